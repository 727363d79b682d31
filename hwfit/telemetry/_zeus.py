"""Zeus (ml.energy, PyPI `zeus`) as the measured path for GPUs: `ZeusMonitor` windows over
NVML's total-energy counter (NVIDIA Volta+) or AMD SMI's energy counter.

Imported lazily: `import zeus.monitor` takes about 1.1 s here and pulls in scipy, scikit-learn
and pandas (not torch). Used only for GPUs that have an energy counter, because on older GPUs
Zeus polls power in a spawned helper process; hwfit integrates NVML power in a thread instead.
"""

import importlib.util
import itertools
import threading
import warnings
from dataclasses import dataclass
from typing import Any

_monitors: dict[int, Any] = {}
_lock = threading.Lock()
_window_ids = itertools.count()


def zeus_installed() -> bool:
    """True when the `zeus` package can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("zeus") is not None
    except (ImportError, ValueError):  # a broken install or a stubbed-out module
        return False


@dataclass(frozen=True)
class ZeusGpu:
    """A Zeus monitor for one CUDA device and the counter it reads."""

    cuda_index: int
    counter: str  # "NVML total energy counter" | "AMD SMI energy counter"
    monitor: Any

    def begin(self) -> str:
        name = f"hwfit-{next(_window_ids)}"
        self.monitor.begin_window(name, sync_execution=False)
        return name

    def end(self, name: str) -> float:
        """Joules of the window `name`; 0.0 when the counter did not advance (window too short)."""
        with warnings.catch_warnings():
            # Zeus warns when a window is shorter than the counter's update period; the
            # meter reports that case itself as a null reading with its reason.
            warnings.simplefilter("ignore")
            measurement = self.monitor.end_window(name, sync_execution=False)
        return float(measurement.gpu_energy[self.cuda_index])


def zeus_gpu(cuda_index: int) -> tuple[ZeusGpu | None, str | None]:
    """A Zeus monitor for `cuda_index` when Zeus can read its energy counter, else the reason."""
    if not zeus_installed():
        return None, "zeus not installed (pip install zeus)"
    try:
        return _zeus_gpu(cuda_index), None
    except _NotUsable as why:
        return None, str(why)
    except Exception as error:  # broad on purpose: any Zeus failure means use hwfit's own reader
        return None, f"zeus failed: {type(error).__name__}: {error}"


class _NotUsable(Exception):
    pass


def _zeus_gpu(cuda_index: int) -> ZeusGpu:
    from zeus.device import get_gpus
    from zeus.device.gpu.common import ZeusGPUInitError

    try:
        gpus = get_gpus()
    except ZeusGPUInitError as error:
        raise _NotUsable(f"zeus found no GPU: {error}") from None
    if cuda_index >= len(gpus):
        raise _NotUsable(f"zeus sees {len(gpus)} GPU(s), not cuda:{cuda_index}")
    if not gpus.supports_get_total_energy_consumption(cuda_index):
        raise _NotUsable(
            f"cuda:{cuda_index} has no energy counter (pre-Volta); zeus would poll power in a spawned process"
        )
    counter = "AMD SMI energy counter" if type(gpus).__name__.startswith("AMD") else "NVML total energy counter"
    return ZeusGpu(cuda_index=cuda_index, counter=counter, monitor=_monitor(cuda_index))


def _monitor(cuda_index: int) -> Any:
    from zeus.monitor import ZeusMonitor

    with _lock:
        if cuda_index not in _monitors:
            _monitors[cuda_index] = ZeusMonitor(gpu_indices=[cuda_index], cpu_indices=[])
        return _monitors[cuda_index]
