"""Progress bars: one line per update in a log, nothing for quick loops, Keras predict too."""

from __future__ import annotations

import io
import sys
import time

import numpy as np
import pytest

from artist_id import progress


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """No delay, a refresh on every update: what a long loop shows over minutes, in a moment."""
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)


def test_a_log_gets_one_line_per_update_with_count_rate_and_time_left(eager: None) -> None:
    log = io.StringIO()  # not a terminal, like `dvc repro > run.log`
    for _ in progress.bar(range(4), desc="features", stream=log):
        time.sleep(0.01)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 4 and all(line.startswith("features:") for line in lines)
    assert "4/4" in lines[-1] and "img/s" in lines[-1]
    assert "<" in lines[1]  # elapsed<remaining


def test_quick_loops_print_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "DELAY_S", 60.0)
    log = io.StringIO()
    assert list(progress.bar(range(3), desc="quick", stream=log)) == [0, 1, 2]
    assert log.getvalue() == ""


def test_a_loop_longer_than_the_delay_leaves_its_final_line_in_a_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # between the delay and the first periodic refresh plain tqdm would print nothing at all
    monkeypatch.setattr(progress, "DELAY_S", 0.05)
    log = io.StringIO()
    for _ in progress.bar(range(3), desc="medium", stream=log):
        time.sleep(0.03)
    assert log.getvalue().count("\n") == 1 and "3/3" in log.getvalue()


def test_keras_predict_advances_the_bar_by_batches(
    eager: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.zeros((10, 3), dtype="float32")
    bar = progress.keras_callback(total=10, batch_size=4, desc="predict:test")
    out = model.predict(x, batch_size=4, verbose=0, callbacks=[bar])
    assert out.shape == (10, 2)
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("predict:test") and "10/10" in last  # 4 + 4 + 2, not 12
