"""`dvc repro` of the data stages in a temporary copy of the repository, with tiny params."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.project import dvc, make_project, ran, reset_params, set_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA_STAGES = ["augment", "eda"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository whose data half ran once with the tiny default params."""
    root = make_project(tmp_path_factory.mktemp("project"))
    proc = dvc(root, "repro", *DATA_STAGES)
    (root / ".first-run").write_text("\n".join(sorted(ran(proc))) + "\n---\n" + proc.stderr)
    return root


def repro_defaults(project: Path) -> None:
    """Back to the tiny defaults with their outputs (restored from DVC's run cache)."""
    reset_params(project)
    dvc(project, "repro", *DATA_STAGES)


def test_repro_builds_the_data_half(project: Path) -> None:
    first, _, stderr = project.joinpath(".first-run").read_text().partition("\n---\n")
    assert set(first.split()) == {"sample", "ingest", "validate", "eda", "select", "augment"}
    # TensorFlow's native start-up lines stay out of the stages' output (issue 8, defect 9)
    assert "absl::InitializeLog" not in stderr and "oneDNN custom operations" not in stderr
    repro_defaults(project)
    manifest = pd.read_csv(project / "data/raw/manifest.csv", dtype=str, keep_default_na=False)
    assert len(manifest) == 16 + 14 + 12 + 5 + 4 + 3
    split = pd.read_csv(project / "data/processed/split.csv")
    assert split["artist"].nunique() == 3  # artists with more than 10 paintings
    assert (split.groupby("group")["split"].nunique() == 1).all()
    for name in ("train", "val", "test"):
        index = pd.read_csv(project / "data/processed" / name / "index.csv")
        assert len(index) > 0 and all((project / p).is_file() for p in index["path"])
    train = pd.read_csv(project / "data/processed/train/index.csv")
    assert (train["copy"] == 1).sum() == (train["copy"] == 0).sum()  # augment.copies = 1
    for report in (
        "ingest/summary.json",
        "validate/summary.json",
        "select/summary.json",
        "augment/preview.png",
        "eda/paintings_per_artist.png",
        "validate/data_docs/index.html",
    ):
        assert (project / "reports" / report).is_file(), report


def test_second_repro_runs_nothing(project: Path) -> None:
    repro_defaults(project)
    proc = dvc(project, "repro", *DATA_STAGES)
    assert ran(proc) == set(), proc.stdout


def test_select_param_change_reruns_only_select_and_later(project: Path) -> None:
    repro_defaults(project)
    set_params(project, select__val_fraction=0.25)
    proc = dvc(project, "repro", *DATA_STAGES)
    assert ran(proc) == {"select", "augment"}, proc.stdout
    assert dvc(project, "status", *DATA_STAGES).stdout.strip().endswith("up to date.")


def test_corrupt_source_files_are_quarantined_and_the_run_continues(project: Path) -> None:
    repro_defaults(project)
    corrupt = project / "corrupt-sample"
    shutil.rmtree(corrupt, ignore_errors=True)
    shutil.copytree(project / "data/sample", corrupt)
    folder = sorted((corrupt / "images").iterdir())[0]
    victims = sorted(folder.glob("*.jpg"))[:2]
    victims[0].write_bytes(victims[0].read_bytes()[:300])
    victims[1].write_text("not a jpeg")
    reset_params(project, data__source="corrupt-sample", validate__max_quarantined=0.1)
    proc = dvc(project, "repro", *DATA_STAGES)
    assert {"ingest", "validate"} <= ran(proc)
    quarantine = pd.read_csv(project / "reports/ingest/quarantine.csv")
    assert sorted(quarantine["reason"]) == ["not_an_image", "truncated"]
    assert len(quarantine) == 2


def test_missing_column_stops_the_run_at_validate(project: Path) -> None:
    repro_defaults(project)
    broken = project / "broken-sample"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(project / "data/sample", broken)
    artists = pd.read_csv(broken / "artists.csv", dtype=str, keep_default_na=False)
    artists.drop(columns=["genre"]).to_csv(broken / "artists.csv", index=False)
    reset_params(project, data__source="broken-sample")
    shutil.rmtree(project / "data/processed")
    proc = dvc(project, "repro", *DATA_STAGES, ok=False)
    assert proc.returncode != 0
    assert "validate" in ran(proc) and not ran(proc) & {"select", "augment", "eda"}
    assert "genre" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "data/processed/split.csv").exists()
