"""The audit layer: purchased compute against useful compute on this machine's devices over a window —
a waterfall per device (idle, other processes, busy but not computing, batch, precision, below peak,
useful), each step with how it was obtained and its price; per-process use; advice backed by the
store's measurements.

Imports core, hardware, telemetry, models and store from hwfit. Everything public is in `__all__`.
"""

from hwfit.audit.advice import Advice
from hwfit.audit.audit import AuditOptions, AuditResult, PoolAudit, audit_observation, default_devices, run_audit
from hwfit.audit.evidence import DEFAULT_MAX_ACCURACY_LOSS, Evidence, Point, read_evidence, served_variant
from hwfit.audit.served import PoolWindow, ServedPool, listening_pid, pool_windows, served_pools
from hwfit.audit.watch import DeviceSeries, Observation, WatchSpec, watch
from hwfit.audit.waterfall import (
    AuditError,
    Factor,
    Share,
    Step,
    Waterfall,
    WaterfallInputs,
    build_waterfall,
)

__all__ = [
    "DEFAULT_MAX_ACCURACY_LOSS",
    "Advice",
    "AuditError",
    "AuditOptions",
    "AuditResult",
    "DeviceSeries",
    "Evidence",
    "Factor",
    "Observation",
    "Point",
    "PoolAudit",
    "PoolWindow",
    "ServedPool",
    "Share",
    "Step",
    "WatchSpec",
    "Waterfall",
    "WaterfallInputs",
    "audit_observation",
    "build_waterfall",
    "default_devices",
    "listening_pid",
    "pool_windows",
    "read_evidence",
    "run_audit",
    "served_pools",
    "served_variant",
    "watch",
]
