"""A daemon thread that calls a function every `interval_s` until stopped (samplers, RAPL wrap watch)."""

import threading
from collections.abc import Callable


class Repeater:
    """Call `fn` every `interval_s` seconds on a daemon thread; the first call comes after one interval.

    An exception in `fn` ends the loop and is kept in `error`, so a failing reader cannot spin.
    """

    def __init__(self, fn: Callable[[], None], interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._fn = fn
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._fn()
            except Exception as error:  # broad on purpose: reported through `error`, never lost
                self.error = error
                return
