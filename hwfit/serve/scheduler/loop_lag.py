"""How late the front end's event loop runs what is due: the time a request that has just arrived on
a socket waits before the loop reads it. The server stamps a request when its handler runs, so this
wait is invisible to it; under load (a burst of arrivals, refusals at full speed, workers on every
core) it reaches milliseconds, and a request admitted at the edge of its deadline misses it by that
much as the client sees it. The dispatcher takes a high percentile of it off every deadline.

Measured by a timer: every `interval_s` a callback is scheduled and how late it runs is recorded.
An idle loop already runs a timer up to 1 ms late (selectors round their timeout up to whole
milliseconds; a socket that turns readable wakes the loop at once), so that resolution is taken off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hwfit.serve.scheduler.recent import RecentQuantile

TIMER_RESOLUTION_S = 0.001  # epoll/poll/select time out in whole milliseconds, rounded up


class LoopLag:
    """A probe on the running loop; `reserve_s()` is the `quantile` of the last `window` lags.
    `on_sample(lag_s, reserve_s)` sees every sample (the server's metrics)."""

    def __init__(
        self,
        interval_s: float = 0.01,
        window: int = 500,
        quantile: float = 0.99,
        refresh_every: int = 25,
        on_sample: Callable[[float, float], None] | None = None,
    ):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0; got {interval_s}")
        self.interval_s = interval_s
        self.on_sample = on_sample
        self._lags = RecentQuantile(window, quantile, refresh_every)
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start probing the running loop (idempotent)."""
        if self._handle is None:
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def reserve_s(self) -> float:
        return self._lags.value

    def add(self, lag_s: float) -> None:
        """One lag, beyond the timer's resolution (what a socket event would have waited)."""
        lag_s = max(0.0, lag_s)
        self._lags.add(lag_s)
        if self.on_sample is not None:
            self.on_sample(lag_s, self._lags.value)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.interval_s
        self._handle = loop.call_at(self._due, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.add(loop.time() - self._due - TIMER_RESOLUTION_S)
        self._schedule(loop)
