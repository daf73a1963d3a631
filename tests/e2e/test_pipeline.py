"""`dvc repro` of the data stages in a temporary copy of the repository, with tiny params."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DATA_STAGES = ["augment", "eda"]
COPY = ["dvc.yaml", "params.yaml", "pyproject.toml", "stages", "src", ".dvcignore"]


def tiny_params(params: dict) -> dict:
    params["base"]["image_size"] = 32
    params["sample"].update(paintings=[16, 14, 12, 5, 4, 3], min_side=48, max_side=96,
                            greyscale=2, near_duplicates=2)
    params["ingest"]["max_side"] = 96
    params["select"]["min_paintings"] = 10
    params["augment"].update(copies=1, preview=2)
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    (root / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    params = tiny_params(yaml.safe_load((root / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, "init", "-q")
    return root


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def dvc(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # the copy's own code, not the editable install of the original checkout
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    env["DVC_NO_ANALYTICS"] = "1"
    proc = subprocess.run([str(Path(bindir) / "dvc"), *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=900)
    if ok and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("'")[1] for line in proc.stdout.splitlines()
            if line.startswith("Running stage")}


def set_params(root: Path, **changes: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_builds_the_data_half(project: Path) -> None:
    proc = dvc(project, "repro", *DATA_STAGES)
    assert ran(proc) == {"sample", "ingest", "validate", "eda", "select", "augment"}
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
    for report in ("ingest/summary.json", "validate/summary.json", "select/summary.json",
                   "augment/preview.png", "eda/paintings_per_artist.png",
                   "validate/data_docs/index.html"):
        assert (project / "reports" / report).is_file(), report


def test_second_repro_runs_nothing(project: Path) -> None:
    proc = dvc(project, "repro", *DATA_STAGES)
    assert ran(proc) == set(), proc.stdout


def test_select_param_change_reruns_only_select_and_later(project: Path) -> None:
    set_params(project, select__val_fraction=0.25)
    proc = dvc(project, "repro", *DATA_STAGES)
    assert ran(proc) == {"select", "augment"}, proc.stdout
    assert dvc(project, "status").stdout.strip().endswith("up to date.")


def test_corrupt_source_files_are_quarantined_and_the_run_continues(project: Path) -> None:
    corrupt = project / "corrupt-sample"
    shutil.copytree(project / "data/sample", corrupt)
    folder = sorted((corrupt / "images").iterdir())[0]
    victims = sorted(folder.glob("*.jpg"))[:2]
    victims[0].write_bytes(victims[0].read_bytes()[:300])
    victims[1].write_text("not a jpeg")
    set_params(project, data__source="corrupt-sample", validate__max_quarantined=0.1)
    proc = dvc(project, "repro", *DATA_STAGES)
    assert {"ingest", "validate"} <= ran(proc)
    quarantine = pd.read_csv(project / "reports/ingest/quarantine.csv")
    assert sorted(quarantine["reason"]) == ["not_an_image", "truncated"]
    assert len(quarantine) == 2


def test_missing_column_stops_the_run_at_validate(project: Path) -> None:
    broken = project / "broken-sample"
    shutil.copytree(project / "data/sample", broken)
    artists = pd.read_csv(broken / "artists.csv", dtype=str, keep_default_na=False)
    artists.drop(columns=["genre"]).to_csv(broken / "artists.csv", index=False)
    set_params(project, data__source="broken-sample")
    shutil.rmtree(project / "data/processed")
    proc = dvc(project, "repro", *DATA_STAGES, ok=False)
    assert proc.returncode != 0
    assert "validate" in ran(proc) and not ran(proc) & {"select", "augment", "eda"}
    assert "genre" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "data/processed/split.csv").exists()
