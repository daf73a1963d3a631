"""params.yaml stays in the form DVC writes, so `dvc exp run -S` leaves no formatting diff.

`dvc exp run -S key=value` rewrites params.yaml through `dvc.utils.hydra.apply_overrides`
(ruamel round trip, then every list rebuilt in block style and null written empty). These
tests run that same code on a copy.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides

from tests.conftest import REPO

PARAMS = REPO / "params.yaml"


def rewritten(tmp_path: Path, overrides: list[str]) -> tuple[list[str], list[str]]:
    copy = tmp_path / "params.yaml"
    shutil.copy2(PARAMS, copy)
    apply_overrides(str(copy), overrides)
    return PARAMS.read_text().splitlines(), copy.read_text().splitlines()


def changed_lines(before: list[str], after: list[str]) -> list[str]:
    diff = difflib.unified_diff(before, after, lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_params_yaml_is_already_in_the_form_dvc_writes(tmp_path: Path) -> None:
    before, after = rewritten(tmp_path, [])
    assert changed_lines(before, after) == [], "run `make params-format` and commit the result"


@pytest.mark.parametrize(
    ("override", "removed", "added"),
    [
        ("train.style_stats.l2=0.01", "-    l2: 0.001", "+    l2: 0.01"),
        (
            "select.min_paintings=20",
            "-  min_paintings: 30       # keep artists with MORE",
            "+  min_paintings: 20       # keep artists with MORE",
        ),
        (
            "train.style_stats.image_size=128",
            "-    image_size:           #",
            "+    image_size: 128",
        ),
    ],
)
def test_an_experiment_changes_only_its_own_line(
    tmp_path: Path, override: str, removed: str, added: str
) -> None:
    before, after = rewritten(tmp_path, [override])
    changes = changed_lines(before, after)
    assert len(changes) == 2, changes  # one line out, one line in: nothing else moves
    assert changes[0].startswith(removed), changes
    assert changes[1].startswith(added), changes
