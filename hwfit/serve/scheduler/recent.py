"""A quantile of recent values, for what the server learns about itself as it runs (how late its pools
answer, how late its event loop runs)."""

from __future__ import annotations

from collections import deque


class RecentQuantile:
    """The `quantile` of the last `window` values, recomputed every `refresh_every` additions (and, with
    `refresh_while_filling`, on each addition while fewer are held, so the first values count at
    once); 0.0 before any."""

    def __init__(self, window: int, quantile: float, refresh_every: int, refresh_while_filling: bool = False):
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1]; got {quantile}")
        self.quantile = quantile
        self.refresh_every = refresh_every
        self.refresh_while_filling = refresh_while_filling
        self._values: deque[float] = deque(maxlen=window)
        self._since_refresh = 0
        self.value = 0.0

    def add(self, value: float) -> None:
        self._values.append(value)
        self._since_refresh += 1
        filling = self.refresh_while_filling and len(self._values) < self.refresh_every
        if self._since_refresh >= self.refresh_every or filling:
            ordered = sorted(self._values)
            self.value = ordered[min(len(ordered) - 1, int(self.quantile * len(ordered)))]
            self._since_refresh = 0

    def clear(self) -> None:
        """Forget every value (the current quantile stands until the next addition)."""
        self._values.clear()
