"""The pixel budget that bounds the memory of concurrent decodes (artist_id.predictor)."""

from __future__ import annotations

import anyio
import pytest

from artist_id.predictor import PixelBudget


async def _run(budget: PixelBudget, sizes: list[int], log: list[tuple[str, int]]) -> None:
    async def one(i: int, pixels: int) -> None:
        async with budget.hold(pixels):
            log.append(("start", i))
            assert budget.held <= budget.capacity or budget.held == pixels
            await anyio.sleep(0.01)
            log.append(("end", i))

    async with anyio.create_task_group() as tg:
        for i, pixels in enumerate(sizes):
            tg.start_soon(one, i, pixels)
            await anyio.sleep(0)  # start in order, so "first come" is well defined


def test_the_budget_is_never_exceeded_and_served_in_order() -> None:
    budget = PixelBudget(100)
    log: list[tuple[str, int]] = []
    anyio.run(_run, budget, [60, 30, 50, 10, 100], log)
    assert budget.peak == 100 and budget.held == 0  # 4 alone; never above the capacity
    starts = [i for what, i in log if what == "start"]
    # First come, first served: 3 (10 px) fits beside 0 and 1 but waits behind 2 (50 px).
    assert starts == [0, 1, 2, 3, 4]
    # 4 (the whole budget) starts only when everything before it has ended.
    assert log.index(("start", 4)) > max(log.index(("end", i)) for i in range(4))


def test_an_image_over_the_whole_budget_runs_alone() -> None:
    budget = PixelBudget(100)
    log: list[tuple[str, int]] = []
    anyio.run(_run, budget, [10, 250, 10], log)
    assert log == [
        ("start", 0),
        ("end", 0),
        ("start", 1),
        ("end", 1),
        ("start", 2),
        ("end", 2),
    ]
    assert budget.held == 0


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    budget = PixelBudget(100)

    async def main() -> None:
        async with budget.hold(80):
            with anyio.move_on_after(0.05):
                async with budget.hold(50):
                    pytest.fail("must wait: 80 + 50 > 100")
            assert budget.held == 80 and not budget._waiting
        assert budget.held == 0
        async with budget.hold(100):
            assert budget.held == 100

    anyio.run(main)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PixelBudget(0)
