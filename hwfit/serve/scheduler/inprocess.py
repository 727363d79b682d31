"""A dispatcher on its own event-loop thread, called from synchronous code (scripts, notebooks,
benches, tests) without HTTP: `with InProcess(PlanDispatcher(plan)) as server: server.infer(req)`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from concurrent.futures import Future
from typing import Any, TypeVar

from hwfit.core import HwfitError
from hwfit.serve.api import Dispatcher, InferRequest, InferResponse

T = TypeVar("T")


class InProcess:
    """Starts `dispatcher` on a private loop thread; `stop()` drains it and ends the thread."""

    def __init__(self, dispatcher: Dispatcher, start_timeout_s: float = 120.0):
        self.dispatcher = dispatcher
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hwfit-inprocess", daemon=True)
        self._thread.start()
        try:
            self.call(dispatcher.start(), timeout_s=start_timeout_s)
        except BaseException:
            self._end_loop()
            raise

    def submit(self, coroutine: Awaitable[T]) -> Future:
        """Schedule a coroutine on the dispatcher's loop; returns a concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]

    def call(self, coroutine: Awaitable[T], timeout_s: float | None = None) -> T:
        return self.submit(coroutine).result(timeout_s)

    def infer(self, request: InferRequest, timeout_s: float | None = 60.0) -> InferResponse:
        return self.call(self.dispatcher.infer(request), timeout_s)

    def infer_async(self, request: InferRequest) -> Future:
        return self.submit(self.dispatcher.infer(request))

    def run_on_loop(self, function: Any, *args: Any) -> Any:
        """Call a plain function on the loop thread (the dispatcher's state lives there)."""

        async def wrapper() -> Any:
            return function(*args)

        return self.call(wrapper(), timeout_s=30.0)

    def stop(self, drain_s: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.call(self.dispatcher.stop(drain_s), timeout_s=drain_s + 60.0)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30.0)
        if self._thread.is_alive():
            raise HwfitError("the dispatcher's loop thread did not stop within 30 s")
        self.loop.close()

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
