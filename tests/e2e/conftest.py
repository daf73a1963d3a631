"""One tiny-params pipeline run shared by the e2e modules that need trained models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.project import commit, dvc, make_project, ran


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary copy of the repository after a whole `dvc repro` with tiny params, committed
    as "first run" (what ran in `.repro-ran`, the log in `.repro-log`). Tests that change it
    put it back (params, outputs, commits)."""
    root = make_project(tmp_path_factory.mktemp("models"))
    proc = dvc(root, "repro")
    root.joinpath(".repro-ran").write_text("\n".join(sorted(ran(proc))))
    root.joinpath(".repro-log").write_text(proc.stdout + proc.stderr)
    commit(root, "first run")
    return root
