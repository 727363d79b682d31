"""Work that keeps the CPU busy for a known time, shared by the telemetry tests (fixture `busy_matmul`)."""

import threading
import time

import numpy as np
import pytest


def busy_matmul(seconds: float, threads: int = 2) -> None:
    """Keep `threads` threads multiplying matrices (numpy releases the GIL) for `seconds`."""
    matrix = np.random.default_rng(0).random((256, 256))

    def work() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            matrix @ matrix

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@pytest.fixture(name="busy_matmul")
def busy_matmul_fixture():
    return busy_matmul
