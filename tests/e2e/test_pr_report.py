"""`make repro` + `make report BASE=HEAD~1` in a temporary copy with tiny params: the run report
after the pipeline, and the PR comparison after one param changed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.project import commit, dvc, env_for, git, set_params

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENV = Path(sys.executable).parent.parent
VERDICTS = {"**better**", "**worse**", "within noise", "within noise †"}


def make(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The Makefile target as CI runs it, on this test run's venv (`-o install -o install-run`:
    never pip)."""
    proc = subprocess.run(
        ["make", "-o", "install", "-o", "install-run", f"VENV={VENV}", *args],
        cwd=root,
        env=env_for(root),
        text=True,
        capture_output=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"make {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def image_links(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


def metric_rows(text: str) -> dict[str, list[list[str]]]:
    """model -> its three rows of the test-metrics table (cells, model name only on the first)."""
    section = text.split("### Test metrics")[1].split("\n### ")[0]
    rows: dict[str, list[list[str]]] = {}
    current = ""
    for line in section.splitlines()[2:]:
        if not line.startswith("| ") or line.startswith("| model"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        current = cells[0].strip("`") or current
        rows.setdefault(current, []).append(cells)
    return rows


@pytest.fixture
def project(trained_project: Path) -> Path:
    # back to the committed first run (an earlier module may have left an experiment applied)
    git(trained_project, "reset", "-q", "--hard")
    dvc(trained_project, "checkout", "-f")
    return trained_project


def test_run_report_links_images_that_exist(project: Path) -> None:
    text = (project / "reports" / "report.md").read_text()
    best = yaml.safe_load((project / "models" / "best.json").read_text())["model"]
    assert f"**Chosen model: `{best}`**" in text
    for section in ("## Data", "## Leaderboard", "## The chosen model", '## The "unknown" answer'):
        assert section in text
    links = image_links(text)
    assert {"report/confusion.png", "report/mistakes.jpg", "augment/preview.png"} <= set(links)
    assert "filters/overview.png" in links  # the filters stage's grids, linked where they are
    for link in links:
        assert (project / "reports" / link).is_file(), link
    tracked = git(project, "ls-files", "reports/report.md", "reports/report").split()
    assert "reports/report.md" in tracked  # committed with the run: renders on GitHub


def test_report_after_one_param_change(project: Path) -> None:
    models = yaml.safe_load((project / "params.yaml").read_text())["train"]["models"]
    try:
        set_params(project, train__vgg16__learning_rate=0.01)
        make(project, "repro")
        commit(project, "second run: vgg16 learning rate 0.01")
        make(project, "report", "BASE=HEAD~1")
        text = (project / "reports" / "pr" / "report.md").read_text()

        assert "| `train.vgg16.learning_rate` | `0.001` | `0.01` |" in text
        params_section = text.split("### Params")[1].split("###")[0]
        changed = [line for line in params_section.splitlines() if line.startswith("| `")]
        assert len(changed) == 1  # only what changed

        rows = metric_rows(text)
        assert set(rows) == set(models)
        for model, cells in rows.items():
            assert [c[1] for c in cells] == ["macro-F1", "balanced acc.", "accuracy"], model
            for c in cells:
                old, new, delta, verdict = c[2], c[3], c[4], c[6]
                assert re.fullmatch(r"\d\.\d{3}( \[\d\.\d\d, \d\.\d\d\])?", old), c
                assert re.fullmatch(r"\d\.\d{3}( \[\d\.\d\d, \d\.\d\d\])?", new), c
                assert re.fullmatch(r"[+-]\d\.\d{3}", delta), c
                assert verdict in VERDICTS, c
        # nothing upstream of the other models changed: never "better" or "worse"
        for model in set(models) - {"vgg16"}:
            assert {c[6] for c in rows[model]} == {"within noise †"}, model
        assert not rows["vgg16"][0][6].endswith("†")  # its inputs changed: a real verdict

        assert "### Leaderboard (validation)" in text
        assert "**Chosen model" in text
        for link in image_links(text):
            assert (project / "reports" / "pr" / link).is_file(), link
        assert "`vgg16`: learning curves" in text  # retrained: its curves changed
        comment = (project / "reports" / "pr" / "comment.md").read_text()
        assert not image_links(comment) and "`pr-report` artifact" in comment
    finally:
        git(project, "reset", "-q", "--hard", "HEAD~1" if _second_run(project) else "HEAD")
        dvc(project, "checkout", "-f")


def _second_run(root: Path) -> bool:
    return git(root, "log", "-1", "--format=%s").startswith("second run")
