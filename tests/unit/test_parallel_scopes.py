"""`make test` runs two pytest-xdist workers: tests that share an expensive fixture must land in
one work unit, or the fixture is built once per worker (the shared pipeline run takes minutes)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO, SHARED_RUN, scope_of


def _uses(path: Path, fixture: str) -> bool:
    """Whether a test module's functions or fixtures take ``fixture`` as an argument."""
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.FunctionDef) and any(a.arg == fixture for a in node.args.args)
        for node in ast.walk(tree)
    )


def test_every_module_of_the_shared_run_is_one_unit() -> None:
    users = {
        p.stem for p in (REPO / "tests" / "e2e").glob("test_*.py") if _uses(p, "trained_project")
    }
    assert users == set(SHARED_RUN)  # a new module that reads the run is listed too
    units = {scope_of(f"tests/e2e/{m}.py::test_x") for m in SHARED_RUN}
    assert len(units) == 1
    assert scope_of("tests/e2e/test_real_dev.py::test_x") != units.pop()


def test_the_service_tier_is_one_unit_and_other_modules_their_own() -> None:
    assert scope_of("tests/service/test_http.py::test_a") == scope_of(
        "tests/service/test_web.py::test_b[param]"
    )
    assert scope_of("tests/unit/test_figures.py::test_a") == "tests/unit/test_figures.py"
    assert scope_of("tests/unit/test_figures.py::test_b[x::y]") == "tests/unit/test_figures.py"
    assert scope_of("tests/unit/test_images.py::test_a") != scope_of(
        "tests/unit/test_figures.py::t"
    )
