"""The CI regression gate (`hwfit check`): rounds of the candidate in fresh processes, interleaved
with the baseline's model where both can run here, a Mann-Whitney U test with a minimum effect per
metric, the environment diff, and Markdown / JUnit / JSON summaries. Imports core, store, profile."""

from hwfit.check.baseline import Baseline, is_run_id, load_baseline, load_baseline_file, write_baseline
from hwfit.check.envdiff import EnvChange, diff_environments, environment_values, unsound_changes
from hwfit.check.errors import CheckError
from hwfit.check.gate import (
    MODES,
    CheckReport,
    CheckSettings,
    MetricResult,
    VariantResult,
    compare_points,
    compare_samples,
    hold_unsound,
    run_check,
)
from hwfit.check.render import HEADLINE, VERDICT_MARK, format_change, format_p, format_value, junit_xml, markdown
from hwfit.check.stats import mann_whitney_p, median_change_ci, smallest_p
from hwfit.check.thresholds import DEFAULT_ALPHA, DEFAULT_METRICS, GateMetric, Thresholds, load_thresholds

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_METRICS",
    "HEADLINE",
    "MODES",
    "VERDICT_MARK",
    "Baseline",
    "CheckError",
    "CheckReport",
    "CheckSettings",
    "EnvChange",
    "GateMetric",
    "MetricResult",
    "Thresholds",
    "VariantResult",
    "compare_points",
    "compare_samples",
    "diff_environments",
    "environment_values",
    "format_change",
    "format_p",
    "format_value",
    "hold_unsound",
    "hold_unsound",
    "is_run_id",
    "junit_xml",
    "load_baseline",
    "load_baseline_file",
    "load_thresholds",
    "mann_whitney_p",
    "markdown",
    "median_change_ci",
    "run_check",
    "smallest_p",
    "unsound_changes",
    "write_baseline",
]
