"""What every stage entry point shares: logging, deterministic JSON, expected errors."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from artist_id.config import ConfigError

log = logging.getLogger("artist_id")


class StageError(RuntimeError):
    """An expected failure (bad data, missing weights): one line on stderr, exit code 1."""


# Exceptions a user can act on: printed as one line, never as a traceback.
EXPECTED: tuple[type[BaseException], ...] = (StageError, ConfigError, FileNotFoundError)


def expect(*errors: type[BaseException]) -> None:
    """Register more exception types (e.g. DatasetError) as expected failures."""
    global EXPECTED
    EXPECTED = (*EXPECTED, *errors)


# ------------------------------------------------------------------------------------
# Workaround: TensorFlow 2.21's native libraries log at load time, before absl::InitializeLog,
# where absl writes every message to stderr whatever TF_CPP_MIN_LOG_LEVEL says ("All log
# messages before absl::InitializeLog() is called are written to STDERR", "oneDNN custom
# operations are on", "Could not find cuda drivers": six lines per `import tensorflow`, about
# 25 in one `dvc repro`). Upstream: abseil/abseil-cpp#1957 (threshold ignored before
# initialisation), tensorflow/tensorflow#102212. Remove when TensorFlow initialises absl
# logging first. The first `import tensorflow` of a stage runs with the native stderr (fd 2)
# captured; afterwards absl INFO lines and that notice are dropped and anything else (a
# warning, an error) is written through. ARTIST_ID_TF_LOGS=1 turns the filter off.
# ------------------------------------------------------------------------------------

_ABSL_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called"


def native_lines_to_keep(lines: Sequence[str]) -> list[str]:
    """The captured start-up lines worth showing: all but absl INFO records and the notice.

    A line that does not start an absl record continues the previous one (TensorFlow's CPU
    feature notice spans two lines) and shares its fate.
    """
    kept: list[str] = []
    dropping = False
    for line in lines:
        record = _ABSL_RECORD.match(line)
        if record or line.startswith(_ABSL_NOTICE):
            dropping = line.startswith(_ABSL_NOTICE) or (record is not None and record[1] == "I")
        if line.strip() and not dropping:
            kept.append(line)
    return kept


class _QuietLoader(importlib.abc.Loader):
    """Runs a module's loader with fd 2 captured, then replays what is worth showing."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
                for line in native_lines_to_keep(text.splitlines()):
                    print(line, file=sys.stderr)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once per process
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Install the start-up log filter above (no effect once TensorFlow is imported)."""
    if "tensorflow" in sys.modules or os.environ.get("ARTIST_ID_TF_LOGS") == "1":
        return
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


# Stage modules import this module first (before any module that imports Keras).
quiet_tensorflow_import()


def setup_logging() -> None:
    level = os.environ.get("ARTIST_ID_LOG", "INFO").upper()
    # Our own messages at INFO; libraries (Great Expectations, BentoML, ...) only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("artist_id").setLevel(level)
    # TensorFlow's C++ start-up chatter hides the stage's own messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run(stage: str, main: Callable[[], None]) -> None:
    """Run a stage's main(); expected errors exit 1 with ``<stage>: <message>`` on stderr."""
    setup_logging()
    try:
        main()
    except EXPECTED as exc:
        print(f"{stage}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON deterministically (sorted keys, fixed indent, trailing newline)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def fresh_dir(path: str | os.PathLike[str]) -> Path:
    """Empty ``path`` (a stage rewrites its outputs whole) and return it."""
    import shutil

    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
