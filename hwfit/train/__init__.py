"""The training layer: where a training step's time goes (`StepProfiler`, `run_training`) and which
change makes it faster while it still learns (`advise`), measured on the user's own model.

Imports only hwfit.core, hardware, telemetry, models and store. Everything public is in `__all__`.
"""

from hwfit.train.advise import (
    LOSS_ATOL,
    LOSS_RTOL,
    MIN_GAIN,
    Advice,
    Experiment,
    ExperimentResult,
    LossCheck,
    advise,
    loss_parity,
)
from hwfit.train.efficiency import utilisation
from hwfit.train.errors import FactoryError, LoaderError, LossNotFinite, OutOfMemory, TrainError
from hwfit.train.loop import NO_CHANGES, Changes, TrainResult, build_loader, checkpoint_blocks, run_training
from hwfit.train.profiler import DATA_BOUND_SHARE, PHASES, Breakdown, StepProfiler, StepTiming, profiled, summarize
from hwfit.train.results import save_advice, save_profile
from hwfit.train.workload import BUILTINS, Workload, load_workload, workload_from

__all__ = [
    "BUILTINS",
    "DATA_BOUND_SHARE",
    "LOSS_ATOL",
    "LOSS_RTOL",
    "MIN_GAIN",
    "NO_CHANGES",
    "PHASES",
    "Advice",
    "Breakdown",
    "Changes",
    "Experiment",
    "ExperimentResult",
    "FactoryError",
    "LoaderError",
    "LossCheck",
    "LossNotFinite",
    "OutOfMemory",
    "StepProfiler",
    "StepTiming",
    "TrainError",
    "TrainResult",
    "Workload",
    "advise",
    "build_loader",
    "checkpoint_blocks",
    "load_workload",
    "loss_parity",
    "profiled",
    "run_training",
    "save_advice",
    "save_profile",
    "summarize",
    "utilisation",
    "workload_from",
]
