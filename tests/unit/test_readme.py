"""The README's commands refer to things that exist: make targets, DVC stages, parameters,
files in git or produced by a stage (so present after `make repro`), and its Mermaid graph is
the pipeline's (`make readme-dag` rewrites it)."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml
from tools import readme_dag

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
TOOLS = ("make", "dvc", "curl", "cat", "python", ".venv/bin/python", ".venv/bin/bentoml", "source")
PATH_ROOTS = ("data/", "models/", "reports/", "src/", "stages/", "tests/", "bench/", "tools/")
# Targets another piece of work adds; remove an entry when its target is in the Makefile.
PENDING_TARGETS = {"report"}  # the pull-request report (issue 11)
# Files the README tells the user how to get (section named), not made by the pipeline.
USER_FILES = {"data/kaggle/archive.zip": "Real dataset: downloaded from Kaggle"}


def commands() -> list[list[str]]:
    """Every command line of the README's bash blocks and inline code, split like a shell."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"(?<!`)`([^`\n]+)`(?!`)", README)
    out = []
    for line in lines:
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and words[0] in TOOLS:
            out.append(words)
    return out


COMMANDS = commands()


@cache
def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.M))


def rel(path: object) -> str:
    return Path(str(path)).resolve().relative_to(REPO).as_posix()


@cache
def stages() -> tuple[set[str], list[str]]:
    """Stage names (matrix items included) and every output path of dvc.yaml."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        names, outs = set(), []
        for stage in repo.index.stages:
            names.add(stage.name)
            names.add(stage.name.partition("@")[0])
            outs += [
                Path(str(o.fs_path)).resolve().relative_to(REPO).as_posix() for o in stage.outs
            ]
    return names, outs


@cache
def tracked() -> set[str]:
    proc = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


def has_param(dotted: str) -> bool:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    adding = dotted.startswith("+")
    *parents, key = dotted.lstrip("+").split(".")
    node = params
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict) and ((key not in node) if adding else (key in node))


def paths_in(words: list[str]) -> list[str]:
    found = []
    for word in words:
        word = word.split("=", 1)[-1].lstrip("@")
        if word.startswith(PATH_ROOTS) and not re.search(r"[<>*{]", word):
            found.append(word.rstrip("/"))
    return found


def test_the_readme_has_commands_to_check() -> None:
    kinds = {c[0] for c in COMMANDS}
    assert {"make", "dvc", "curl"} <= kinds and len(COMMANDS) > 30


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[0] == "make"], ids=" ".join)
def test_make_targets_exist(words: list[str]) -> None:
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    for target in targets:
        assert target in make_targets() | PENDING_TARGETS, f"no make target {target!r}"


@pytest.mark.parametrize("words", [c for c in COMMANDS if c[0] == "dvc"], ids=" ".join)
def test_dvc_commands_name_real_stages_and_params(words: list[str]) -> None:
    names, _ = stages()
    if words[1] in ("repro", "dag"):
        for target in words[2:]:
            if not target.startswith("-") and "<" not in target:
                assert target in names, f"no stage {target!r}"
    for flag, value in itertools.pairwise(words):
        if flag in ("-S", "--set-param"):
            assert has_param(value.split("=", 1)[0]), f"{value}: no such parameter in params.yaml"


@pytest.mark.parametrize("path", sorted({p for c in COMMANDS for p in paths_in(c)}))
def test_files_in_commands_exist_in_git_or_after_make_repro(path: str) -> None:
    if path in USER_FILES:
        assert USER_FILES[path].split(":")[0] in README
        return
    _, outs = stages()
    in_git = path in tracked() or any(t.startswith(path + "/") for t in tracked())
    produced = [o for o in outs if path == o or path.startswith(o + "/")]
    assert in_git or produced, f"{path} is neither in git nor an output of a stage"
    for out in produced:  # where this checkout has run the stage, the file is really there
        if (REPO / out).exists():
            assert (REPO / path).exists(), f"{path}: not produced by {out}"


def test_mermaid_graph_is_the_pipeline() -> None:
    assert readme_dag.block(README) == readme_dag.dag_markdown(), "run `make readme-dag`"
