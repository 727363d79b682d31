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
        lag = LoopLag(
            interval_s=0.005,
            window=100,
            quantile=0.95,
            refresh_every=5,
            on_sample=lambda lag_s, reserve_s: seen.append(lag_s),
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        lag.start()
        lag.start()  # idempotent: one probe, not two
        await asyncio.sleep(0.2)
        idle = list(seen)
        idle_s = loop.time() - started
        for _ in range(5):
            time.sleep(block_s)  # a handler that holds the loop, on purpose
            await asyncio.sleep(0.01)
        lag.stop()
        count = len(seen)
        await asyncio.sleep(0.05)
        assert len(seen) == count  # stopped means stopped
        return idle, idle_s, seen[len(idle) :], lag.reserve_s()

    idle, idle_s, blocked, reserve = asyncio.run(probe(0.03))
    # one sample per 5 ms plus its lateness: none doubled, none skipped (counted against the time
    # the idle window really took and the lateness the probe saw, not against this machine's speed)
    assert len(idle) <= idle_s / 0.005 + 1
    assert len(idle) >= idle_s / (0.005 + 0.001 + max(idle)) - 2
    assert max(blocked) > 0.02  # a 30 ms block, seen by the timer that was due during it
    assert sorted(idle)[len(idle) // 2] < max(blocked) / 3  # idle lag is small beside the block
    assert reserve > 0.01


def test_the_timers_resolution_is_taken_off_each_sample():
    """On a real event loop whose clock the test moves (so no machine's speed enters): a timer run
    4 ms late reads 3 ms of lag; one run within the 1 ms resolution reads none."""
    seen = []
    loop = asyncio.new_event_loop()
    now = [100.0]
    loop.time = lambda: now[0]
    lag = LoopLag(
        interval_s=0.005,
        window=10,
        quantile=0.5,
        refresh_every=1,
        on_sample=lambda lag_s, reserve_s: seen.append(lag_s),
    )

    async def turn():
        await asyncio.sleep(0)

    try:
        loop.run_until_complete(turn())
        loop.call_soon(lag.start)  # due at 100.005
        loop.run_until_complete(turn())
        now[0] = 100.009  # 4 ms late
        loop.run_until_complete(turn())
        now[0] = 100.0145  # next due at 100.014: 0.5 ms late, inside the resolution
        loop.run_until_complete(turn())
        lag.stop()
    finally:
        loop.close()
    assert seen == [pytest.approx(0.003), 0.0]


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
