"""The event-loop lag probe: an idle loop shows next to none, a blocked loop shows the block, and
the reserve is a high percentile of what it saw."""

import asyncio
import time

import pytest

from hwfit.serve.scheduler.loop_lag import LoopLag


@pytest.mark.timeout(10)
def test_a_blocked_loop_shows_its_block_and_an_idle_one_next_to_none():
    async def probe(block_s):
        seen = []
        lag = LoopLag(interval_s=0.005, window=100, quantile=0.95, refresh_every=5, on_sample=lambda lag_s, reserve_s: seen.append(lag_s))
        lag.start()
        lag.start()  # idempotent: one probe, not two
        await asyncio.sleep(0.2)
        idle = list(seen)
        for _ in range(5):
            time.sleep(block_s)  # noqa: ASYNC251 -- a handler that holds the loop, on purpose
            await asyncio.sleep(0.01)
        lag.stop()
        count = len(seen)
        await asyncio.sleep(0.05)
        assert len(seen) == count  # stopped means stopped
        return idle, seen[len(idle):], lag.reserve_s()

    idle, blocked, reserve = asyncio.run(probe(0.03))
    assert 20 <= len(idle) <= 45  # one sample per 5 ms for 0.2 s, none doubled
    assert sorted(idle)[len(idle) // 2] < 0.003  # the timer's own 1 ms resolution is taken off
    assert max(blocked) > 0.02  # a 30 ms block, seen by the timer that was due during it
    assert reserve > 0.01


def test_the_reserve_is_the_quantile_of_the_window_and_never_negative():
    lag = LoopLag(window=100, quantile=0.9, refresh_every=10)
    assert lag.reserve_s() == 0.0
    for i in range(100):
        lag.add(i / 1000.0)
    assert lag.reserve_s() == pytest.approx(0.090)
    for _ in range(100):
        lag.add(-0.0005)  # a timer that ran inside the resolution: no lag, not a negative one
    assert lag.reserve_s() == 0.0
    with pytest.raises(ValueError, match="quantile"):
        LoopLag(quantile=0.0)
