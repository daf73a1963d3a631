"""What every stage entry point shares: logging, deterministic JSON, expected errors."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
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
