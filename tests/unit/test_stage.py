"""What every stage shares: one-line errors, and TensorFlow's start-up lines kept out of logs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from artist_id import stage
from tests.conftest import REPO

# What `import tensorflow` 2.21 prints on a CPU machine, whatever TF_CPP_MIN_LOG_LEVEL says.
STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795966113.649325    4537 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results.",
    "I0000 00:00:1795966113.652357    4537 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "I0000 00:00:1795966114.000001    4537 cpu_feature_guard.cc:210] This TensorFlow binary "
    "is optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.",
]


def test_only_absl_info_lines_and_the_notice_are_dropped() -> None:
    warning = "W0000 00:00:1795966114.5 4537 loader.cc:12] a real warning"
    error = "E0000 00:00:1795966114.6 4537 loader.cc:13] a real error"
    lines = [*STARTUP, warning, "  its second line", "", error]
    assert stage.native_lines_to_keep(lines) == [warning, "  its second line", error]
    assert stage.native_lines_to_keep(["plain text from a library"]) == [
        "plain text from a library"
    ]


@pytest.mark.slow
def test_a_stage_importing_tensorflow_prints_none_of_its_startup_lines() -> None:
    code = (
        "import sys\n"
        "from artist_id import stage\n"
        "import tensorflow as tf\n"
        "print('imported', tf.__version__, file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARTIST_ID_TF_LOGS"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert "imported" in proc.stderr
    for noise in ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda"):
        assert noise not in proc.stderr, proc.stderr


def test_expected_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        raise stage.StageError("the data folder is empty: run `dvc repro sample`")

    with pytest.raises(SystemExit) as exit_info:
        stage.run("ingest", main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == "ingest: the data folder is empty: run `dvc repro sample`\n"
