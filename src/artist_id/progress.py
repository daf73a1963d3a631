"""Progress bars that read well on a terminal and in a log file.

Every loop over images that can take more than a few seconds shows a bar with the count, the
rate and the time left. On a terminal it is tqdm's ordinary bar. When stderr is not a terminal
(``dvc repro > log``, CI) tqdm would write every update behind a carriage return, one endless
line; here each update becomes its own line instead, at most one every
:data:`LOG_INTERVAL_S` seconds, so a log shows how far a long step got and how fast it went.
Loops that end within :data:`DELAY_S` seconds print nothing at all, which keeps the default
run on the small embedded sample quiet.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

DELAY_S = 2.0  # loops faster than this print nothing
TTY_INTERVAL_S = 0.5
LOG_INTERVAL_S = 30.0  # one line per this many seconds when stderr is a file or a pipe
LOG_WIDTH = 100


class LineWriter(io.TextIOBase):
    """A text stream for tqdm that turns each carriage-return update into a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip("\n")
        if line.strip():
            self.stream.write(line + "\n")
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class _Bar(tqdm):
    """tqdm that always ends with a final line once the loop outlasted ``delay``.

    Plain tqdm prints nothing at ``close()`` unless a refresh happened after the delay, so in a
    log (one refresh per :data:`LOG_INTERVAL_S`) a 20-second loop would leave no trace.
    """

    def close(self) -> None:
        last: float | None = self.__dict__.get("last_print_t")
        if (
            not self.disable
            and last is not None
            and last < self.start_t + self.delay
            and self._time() - self.start_t >= self.delay
        ):
            self.last_print_t = self._time()  # counts as displayed: close() prints the last line
        super().close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bar(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "img",
    stream: TextIO | None = None,
) -> tqdm[T]:
    """A tqdm bar over ``iterable`` (or a manual one of ``total`` steps: call ``update``).

    ``stream`` defaults to the current ``sys.stderr`` (looked up at call time, so a captured or
    redirected stderr is honoured).
    """
    out = sys.stderr if stream is None else stream
    tty = _is_tty(out)
    return _Bar(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=out if tty else LineWriter(out),
        mininterval=TTY_INTERVAL_S if tty else LOG_INTERVAL_S,
        maxinterval=TTY_INTERVAL_S if tty else LOG_INTERVAL_S,
        ncols=None if tty else LOG_WIDTH,
        delay=DELAY_S,
        dynamic_ncols=tty,
        smoothing=0.1,
    )


def track(iterable: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (a shorthand for ``for x in bar(iterable, ...)``)."""
    with bar(iterable, total=total, desc=desc) as progress:
        yield from progress


def keras_callback(total: int, batch_size: int, desc: str) -> Any:
    """A Keras callback that advances a bar by each batch of ``model.predict``.

    Keras' own ``verbose=1`` bar is unreadable in a log file and ``verbose=0`` prints nothing
    for minutes; this one follows :func:`bar`. Pass it in ``callbacks=[...]``.
    """
    import keras

    class PredictProgress(keras.callbacks.Callback):
        def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.bar = bar(total=total, desc=desc)

        def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.bar.update(min(batch_size, total - self.bar.n))

        def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
            self.bar.close()

    return PredictProgress()
