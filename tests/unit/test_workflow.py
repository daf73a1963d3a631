"""The PR-report workflow, checked statically: GitHub's schema, zizmor, least privilege, and
every step but the comment being a `make` target (which the e2e tests run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "pr-report.yaml"
BIN = Path(sys.executable).parent
# Steps that only deliver the report (the comment, the job summary): they cannot run here.
DELIVERY = {"Job summary", "Set up CML", "Post or update the PR comment"}


def _workflow() -> dict[Any, Any]:
    # YAML 1.1 reads the key `on` as True
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def _steps() -> list[dict[str, Any]]:
    return list(_workflow()["jobs"]["report"]["steps"])


def test_the_workflow_matches_githubs_schema() -> None:
    proc = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing() -> None:
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(proc.stdout)
    summary = [
        (f["ident"], f["determinations"]["severity"])
        for f in findings
        if not f.get("ignored", False)
    ]
    assert summary == [], summary
    assert proc.returncode == 0, proc.stderr


def test_zizmor_still_catches_an_injection(tmp_path: Path) -> None:
    """The check above can fail: the base branch's name expanded inside `run:` is flagged."""
    bad = WORKFLOW.read_text().replace(
        'make report BASE="origin/$BASE_REF"', "make report BASE=origin/${{ github.base_ref }}"
    )
    assert bad != WORKFLOW.read_text()
    path = tmp_path / ".github" / "workflows" / "bad.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(bad)
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "template-injection" in {f["ident"] for f in json.loads(proc.stdout)}


def test_least_privilege_and_pull_request_only() -> None:
    flow = _workflow()
    assert flow[True] == {"pull_request": None}  # never pull_request_target
    assert flow["permissions"] == {}
    assert flow["jobs"]["report"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
    }


def test_checkout_keeps_history_and_no_credentials() -> None:
    checkout = next(s for s in _steps() if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}


def test_actions_are_pinned_by_commit_except_the_documented_one() -> None:
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    for ref, rest in uses:
        if re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref):
            assert re.search(r"#\s*v\d", rest), f"{ref}: say which version the SHA is"
        else:
            assert ref.startswith("iterative/setup-cml@"), f"{ref} is not pinned by commit"
            assert "zizmor: ignore[unpinned-uses]" in rest


def test_every_step_but_the_comment_is_a_make_target() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
    for step in _steps():
        if "run" not in step:
            assert "uses" in step
            continue
        if step.get("name") in DELIVERY:
            continue
        words = step["run"].split()
        assert words[0] == "make" and words[1] in targets, step
    runs = [s["run"] for s in _steps() if "run" in s]
    assert 'make report BASE="origin/$BASE_REF" RUN_URL="$RUN_URL"' in runs
    assert "make install" in runs and "make repro" in runs


def test_python_and_caches() -> None:
    steps = {str(s.get("uses", "")).split("@")[0]: s for s in _steps()}
    assert steps["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert steps["actions/setup-python"]["with"]["cache"] == "pip"
    assert steps["actions/cache/restore"]["with"]["path"] == ".dvc/cache"
    assert steps["actions/cache/save"]["with"]["path"] == ".dvc/cache"


def test_images_are_not_uploaded_to_a_third_party_by_default() -> None:
    comment = next(s for s in _steps() if s.get("name") == "Post or update the PR comment")
    assert comment["env"]["PUBLISH"] == "${{ vars.PR_REPORT_PUBLISH_IMAGES == 'true' }}"
    assert '--publish="$PUBLISH"' in comment["run"]
    assert "reports/pr/comment.md" in comment["run"]
    fork_guard = "github.event.pull_request.head.repo.full_name == github.repository"
    assert comment["if"] == fork_guard


@pytest.mark.parametrize("target", ["report", "repro", "install"])
def test_the_make_targets_exist(target: str) -> None:
    proc = subprocess.run(
        ["make", "-n", "-o", "install", "-o", "install-run", target, "BASE=HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _dry_run(target: str, venv: Path) -> str:
    """What `make <target>` would run in the repository with ``venv`` as its venv (no action)."""
    proc = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def test_make_repro_installs_the_project_without_its_dev_tools(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # a fresh clone: no venv, no stamp
    repro = _dry_run("repro", venv)
    pips = [line for line in repro.splitlines() if "pip install" in line]
    assert len(pips) == 1 and pips[0].endswith(" -e ."), repro
    test = _dry_run("test", venv)
    pips = [line for line in test.splitlines() if "pip install" in line]
    assert len(pips) == 1 and pips[0].endswith(" -e '.[dev]'"), test
    assert "pytest" in test


def test_the_full_install_also_satisfies_make_repro(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    # the stamp files, named by the Makefile itself (after the requirements' checksum)
    dev, run = subprocess.run(
        ["make", "-s", "--eval", "stamps: ; @echo $(STAMP) $(RUN_STAMP)", "stamps", f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"touch {dev} {run}" in _dry_run("install", venv)  # the full install leaves both
    for stamp in (dev, run):
        Path(stamp).touch()
    assert "pip install" not in _dry_run("repro", venv)
    assert "pip install" not in _dry_run("test", venv)
    # after `make repro` alone, `make test` adds the dev tools
    Path(dev).unlink()
    assert "-e '.[dev]'" in _dry_run("test", venv)
    assert "pip install" not in _dry_run("repro", venv)
