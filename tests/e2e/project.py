"""Helpers for the e2e tier: a temporary copy of the repository driven through `dvc`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

COPY = [
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "constraints.txt",
    "Makefile",
    "stages",
    "src",
    ".dvcignore",
    "photos",
]


def tiny_params(params: dict[str, Any]) -> dict[str, Any]:
    """Small enough for a CI minute: 6 artists, 32 px, 2 epochs, 4 style iterations."""
    params["base"]["image_size"] = 32
    params["sample"].update(
        paintings=[16, 14, 12, 5, 4, 3], min_side=48, max_side=96, greyscale=2, near_duplicates=2
    )
    params["ingest"]["max_side"] = 96
    params["select"]["min_paintings"] = 10
    params["augment"].update(copies=1, preview=2)
    params["train"].update(epochs=2, batch_size=16, patience=2)
    params["evaluate"]["misclassified"] = 4
    # random VGG weights (style transfer's trunk does not matter here), 48 px, 4 iterations
    params["style"].update(weights="none", image_size=48, checkpoints=[2, 4], photos=["china.jpg"])
    params["filters"]["per_layer"] = 2
    # Two genres keep two artists each among the six (Impressionism, Abstractionism).
    params["genre"].update(min_paintings=5, bootstrap=20)
    params["periods"].update(
        min_paintings=3, pca_components=10, perplexity=10, thumbnails=4, palette_pixels=2000
    )
    return params


def make_project(root: Path) -> Path:
    """Copy the pipeline's files into ``root``, shrink the params, make a git repo."""
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    (root / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # plots.html_template
    (root / ".gitignore").write_text("__pycache__/\n")
    reset_params(root)
    git(root, "init", "-q")
    commit(root, "initial")  # dvclive needs a commit to exist
    return root


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # the copy's own code, not the editable install of the original checkout
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def dvc(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bindir / "dvc"), *args],
        cwd=root,
        env=env_for(root),
        text=True,
        capture_output=True,
        timeout=1800,
    )
    if ok and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def stage_error(root: Path, stage: str, *args: str, **env: str) -> str:
    """Run ``python -m stages.<stage> <args>`` in the copy, as DVC would, with ``env`` added.
    It must fail as an expected error does (exit 1, no traceback): returns its one stderr line."""
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", *args],
        cwd=root,
        env=env_for(root, **env),
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """Names of the stages a `dvc repro` ran."""
    return {
        line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage")
    }


def reset_params(root: Path, **changes: object) -> None:
    """params.yaml = the repository's defaults, shrunk by :func:`tiny_params`, plus ``changes``.

    Every e2e test starts from this, stating the params it needs, so the tests pass in any
    order whatever an earlier test left behind.
    """
    params = tiny_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    set_params(root, **changes)


def set_params(root: Path, **changes: object) -> None:
    """``set_params(root, select__val_fraction=0.2)`` edits params.yaml in place."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, key = dotted.split("__")
        for part in parents:
            node = node[part]
        node[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def restore(root: Path) -> None:
    """Back to the committed first run: params, lock file and outputs (each test states it).

    From HEAD, not the index: `dvc exp run` stages params.yaml and dvc.lock in git, and the
    `cache: false` reports are not in DVC's cache for `dvc checkout` to restore.
    """
    git(root, "checkout", "HEAD", "--", "params.yaml", "dvc.lock", "reports")
    dvc(root, "checkout", "-f")
