"""Data-parallel ranks for `advise`'s DDP experiment: gloo on CPUs, NCCL on GPUs, on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_ranks(rank: int, world: int, target: str, steps: int, warmup: int, device: str, port: int, queue: Any) -> None:
    """One rank: join the group, train with DistributedDataParallel, and (rank 0) put the result."""
    import torch
    import torch.distributed as dist

    from hwfit.core import Device
    from hwfit.train.loop import run_training

    parsed = Device.parse(device)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if parsed.is_gpu:
        parsed = Device.parse(f"cuda:{rank}")
        torch.cuda.set_device(rank)
    else:
        # The ranks share the cores: each gets its share, as torchrun's users set OMP_NUM_THREADS.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("nccl" if parsed.is_gpu else "gloo", rank=rank, world_size=world)
    try:
        result = run_training(target, steps=steps, warmup=warmup, device=str(parsed), measure_energy=False)
        if rank == 0:  # the ranks step together (every step all-reduces the gradients)
            queue.put(("ok", result.to_dict()))
        # every rank reaches the end before any tears the group down: a rank whose peer has already
        # closed its gloo connections can abort in destroy_process_group ("terminate called without an
        # active exception", SIGABRT), which failed a CI run
        dist.barrier()
    except Exception as error:
        if rank == 0:
            queue.put(("error", f"{type(error).__name__}: {error}"))
        raise
    finally:
        dist.destroy_process_group()
