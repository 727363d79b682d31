"""The nouns every layer shares, defined once: `Variant` (and its family, layout and
configuration), `Device`, how a figure was obtained (provenance and `Figure`), which way each
metric is better, the status vocabularies, traffic shapes, and the error types. Imports no other hwfit package."""

from hwfit.core.device import Device, UnknownDevice, is_gpu
from hwfit.core.errors import BackendError, HwfitError, InputSpecError, ModelSourceError, VariantUnavailable
from hwfit.core.metrics import DIRECTIONS, METRIC_DIRECTIONS, OBJECTIVE_METRICS, direction, to_minimise, worst
from hwfit.core.paths import cache_dir
from hwfit.core.provenance import (
    ENERGY_PROVENANCE,
    FIGURE_PROVENANCE,
    PROVENANCE,
    Figure,
    check_provenance,
    format_si,
    short_provenance,
)
from hwfit.core.status import (
    CHECK_STATUSES,
    GATE_VERDICTS,
    POINT_STATUSES,
    RUN_STATUSES,
    USABLE_POINT_STATUSES,
    is_usable,
)
from hwfit.core.traffic import (
    Burst,
    Constant,
    Diurnal,
    Poisson,
    Steps,
    Trace,
    Traffic,
    TrafficError,
    parse_duration_s,
    parse_traffic,
    read_trace,
)
from hwfit.core.variant import (
    PRECISIONS,
    REPLICAS_KNOB,
    Config,
    Family,
    Layout,
    Variant,
    curve_key_of,
    usable_threads,
)

__all__ = [
    "BackendError",
    "Burst",
    "CHECK_STATUSES",
    "Config",
    "Constant",
    "DIRECTIONS",
    "Device",
    "Diurnal",
    "ENERGY_PROVENANCE",
    "FIGURE_PROVENANCE",
    "Family",
    "Figure",
    "GATE_VERDICTS",
    "HwfitError",
    "InputSpecError",
    "Layout",
    "METRIC_DIRECTIONS",
    "ModelSourceError",
    "OBJECTIVE_METRICS",
    "POINT_STATUSES",
    "PRECISIONS",
    "PROVENANCE",
    "Poisson",
    "REPLICAS_KNOB",
    "RUN_STATUSES",
    "Steps",
    "Trace",
    "Traffic",
    "TrafficError",
    "USABLE_POINT_STATUSES",
    "UnknownDevice",
    "Variant",
    "VariantUnavailable",
    "cache_dir",
    "check_provenance",
    "curve_key_of",
    "direction",
    "format_si",
    "is_gpu",
    "is_usable",
    "parse_duration_s",
    "parse_traffic",
    "read_trace",
    "short_provenance",
    "to_minimise",
    "usable_threads",
    "worst",
]
