"""Service tier: a tiny but real packaged model, the service in-process and over real HTTP.

The model is a real ``cnn_small`` (32 px, 3 classes, one 8-unit dense layer) trained for one
epoch on random arrays, then packaged by the package stage itself (``stages.package.run``) in a
temporary project directory: the tests exercise the files a ``dvc repro`` writes. BentoML's
store is a throwaway BENTOML_HOME (see helpers.py), removed at the end of the session.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from tests.service.helpers import HOME, REPO, VENV_BIN, Project, Server, make_project, serve


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def client(project: Project) -> Iterator[object]:
    """The real ASGI app of the entry service (middlewares included), in-process."""
    with warnings.catch_warnings():  # "use httpx2": a deprecation inside Starlette
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from artist_id.service import ArtistID

    entry: Any = ArtistID  # a bentoml Service (its stubs say the class)
    with TestClient(entry.to_asgi(is_main=True), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def bento_tag(project: Project) -> str:
    """``bentoml build`` of the repository's bentofile.yaml (bundles the packaged model)."""
    result = subprocess.run(
        [str(VENV_BIN / "bentoml"), "build", "--output", "tag"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("artist_id:"), result.stdout
    return tag


@pytest.fixture(scope="session")
def server(bento_tag: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``bentoml serve <built Bento>`` on a free port, as `make serve` does."""
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with serve(bento_tag, REPO, log) as srv:
        yield srv
