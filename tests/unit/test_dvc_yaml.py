"""dvc.yaml keeps the stage contract: one name per stage, every imported code file a dep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from artist_id.config import load_params
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def local_imports(path: Path) -> set[str]:
    """artist_id modules imported anywhere in ``path`` (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "artist_id":
                found |= {f"artist_id.{a.name}" for a in node.names}
            elif node.module.startswith("artist_id."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("artist_id.")}
    return {m for m in found if (REPO / "src" / (m.replace(".", "/") + ".py")).exists()}


def closure(path: Path) -> set[str]:
    todo, seen = [path], set()
    while todo:
        for module in local_imports(todo.pop()):
            file = f"src/{module.replace('.', '/')}.py"
            if file not in seen:
                seen.add(file)
                todo.append(REPO / file)
    return seen


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_lists_every_code_file_it_imports(name: str) -> None:
    stage = STAGES[name]
    assert stage["cmd"].startswith(f"python -m stages.{name}")
    deps = set(stage["deps"])
    assert f"stages/{name}.py" in deps
    imported = closure(REPO / "stages" / f"{name}.py")
    missing = imported - deps
    assert not missing, f"{name}: dvc.yaml deps lack {sorted(missing)}"
    code = {d for d in deps if d.startswith("src/") and d.endswith(".py")}
    stale = code - imported
    assert not stale, f"{name}: dvc.yaml lists code the stage does not import: {sorted(stale)}"
    data = {d for d in deps if d.startswith("src/") and not d.endswith(".py")}
    needed = package_data(imported)
    assert data == needed, f"{name}: package data deps {sorted(data)}, code reads {sorted(needed)}"


def package_data(files: set[str]) -> set[str]:
    """Folders of src/artist_id/ (not packages) that these modules name in a string literal:
    data the code reads through importlib.resources, which changes the stage's output."""
    folders = {
        p.name
        for p in (REPO / "src" / "artist_id").iterdir()
        if p.is_dir() and not (p / "__init__.py").exists() and not p.name.startswith(("_", "."))
    }
    found = set()
    for file in files:
        for node in ast.walk(ast.parse((REPO / file).read_text())):
            if isinstance(node, ast.Constant) and node.value in folders:
                found.add(f"src/artist_id/{node.value}")
    return found


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_params_exist_in_params_yaml(name: str) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in STAGES[name].get("params", []):
        node = params
        for part in key.replace("${item.model}", params["train"]["models"][0]).split("."):
            assert part in node, f"{name}: params.yaml has no {key}"
            node = node[part]


def test_default_params_parse() -> None:
    load_params(REPO / "params.yaml")
