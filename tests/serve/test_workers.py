"""Worker processes: out-of-memory splitting, batches through shared memory, and the watchdog."""

import asyncio
import os
import signal

import numpy as np
import pytest

from hwfit.core import Variant
from hwfit.models import load_model
from hwfit.serve.scheduler.workers import (
    WatchdogPolicy,
    Worker,
    WorkerFailure,
    WorkerSpec,
    is_out_of_memory,
    run_splitting_on_oom,
)
from tests.serve.emulation import write_small_onnx_model


class EmulatedOutOfMemory(RuntimeError):
    """What ONNX Runtime's CUDA provider raises, by message: the splitter must recognise it."""


def runs_up_to(limit, calls):
    def run(inputs):
        size = inputs["x"].shape[0]
        calls.append(size)
        if size > limit:
            raise EmulatedOutOfMemory(
                f"[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory (emulated at batch {size})"
            )
        return {"y": inputs["x"] * 2}

    return run


@pytest.mark.timeout(10)
def test_an_out_of_memory_batch_is_split_in_halves_until_it_fits_and_joined_in_order():
    calls = []
    inputs = {"x": np.arange(10, dtype=np.float32).reshape(10, 1)}
    outputs, splits = run_splitting_on_oom(runs_up_to(3, calls), inputs)
    assert np.array_equal(outputs["y"], inputs["x"] * 2)
    assert calls == [10, 5, 2, 3, 5, 2, 3]
    assert splits == 3


@pytest.mark.timeout(10)
def test_other_errors_and_a_batch_of_one_out_of_memory_are_raised():
    with pytest.raises(EmulatedOutOfMemory):
        run_splitting_on_oom(runs_up_to(0, []), {"x": np.ones((4, 1), np.float32)})

    def broken(inputs):
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_splitting_on_oom(broken, {"x": np.ones((4, 1), np.float32)})
    assert is_out_of_memory(MemoryError()) and not is_out_of_memory(ValueError("shape mismatch"))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return load_model(str(write_small_onnx_model(tmp_path_factory.mktemp("model") / "small.onnx")))


PROMPT_WATCHDOG = WatchdogPolicy(timeout_multiple=2.0, timeout_margin_s=0.5, start_timeout_s=60)


def ort_worker(model, policy=PROMPT_WATCHDOG):
    variant = Variant("ort", "cpu", "fp32", 4, threads=1)
    return Worker(
        WorkerSpec("p", 0, "cpu", model.source, model.inputs, variant), policy, input_bytes=64, output_bytes=64
    )


@pytest.mark.timeout(60)
def test_batches_larger_than_the_arenas_grow_them_and_a_raising_worker_is_cut_off(small_model):
    async def scenario():
        worker = ort_worker(small_model)
        info = await worker.start()
        assert worker.ready and info.pid == worker.pid and info.outputs["y"] == ((4, 2), "float32")
        x = np.random.default_rng(0).random((300, 4), dtype=np.float32)  # 4.8 kB > the 128 B arenas
        result = await worker.run({"x": x}, predicted_s=0.01)
        weights = np.arange(8, dtype=np.float32).reshape(4, 2) / 8
        assert np.allclose(result.outputs["y"], np.maximum(x @ weights, 0), atol=1e-6)
        again = await worker.run({"x": x[:2]}, predicted_s=0.01)  # after the arenas were swapped
        assert np.allclose(again.outputs["y"], result.outputs["y"][:2])
        with pytest.raises(WorkerFailure) as failure:
            await worker.run({"x": np.ones((2, 5), np.float32)}, predicted_s=0.01)  # wrong width: ORT raises
        assert failure.value.kind == "raised" and "raised" in str(failure.value)
        assert worker.state == "dead"
        await worker.stop()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_hanging_worker_is_cut_by_the_watchdog_and_a_killed_one_is_seen_dead(small_model):
    async def scenario():
        worker = ort_worker(small_model)
        await worker.start()
        os.kill(worker.pid, signal.SIGSTOP)  # a hang: alive, never answers
        started = asyncio.get_running_loop().time()
        with pytest.raises(WorkerFailure) as failure:
            await worker.run({"x": np.ones((1, 4), np.float32)}, predicted_s=0.01)
        waited = asyncio.get_running_loop().time() - started
        assert failure.value.kind == "hung" and "no answer within 0.52 s" in str(failure.value)
        assert 0.5 <= waited < 3.0
        await worker.start()  # the same slot starts a fresh process
        first_pid = worker.pid
        os.kill(first_pid, signal.SIGKILL)
        for _ in range(100):
            if worker.state == "dead":
                break
            await asyncio.sleep(0.05)
        assert worker.state == "dead" and "SIGKILL" in str(worker.last_failure)
        with pytest.raises(WorkerFailure, match="not ready"):
            await worker.run({"x": np.ones((1, 4), np.float32)}, predicted_s=0.01)
        await worker.stop()

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_load_says_why(small_model):
    async def scenario():
        spec = WorkerSpec("p", 0, "cpu", small_model.source, small_model.inputs, Variant("ort", "cuda:7", "fp16", 1))
        worker = Worker(spec, WatchdogPolicy(start_timeout_s=60), 64, 64)
        with pytest.raises(WorkerFailure) as failure:
            await worker.start()
        assert failure.value.kind == "load" and "cuda:7" in str(failure.value)
        await worker.stop()

    asyncio.run(scenario())
