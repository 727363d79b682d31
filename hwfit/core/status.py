"""The status vocabularies: of a measured point, of a profiling run, of a quick variant check."""

POINT_STATUSES = ("ok", "unstable", "failed", "skipped")
# Points whose timing can be used (planned on, plotted): an unstable one is marked, not dropped.
USABLE_POINT_STATUSES = ("ok", "unstable")
RUN_STATUSES = ("running", "complete", "interrupted", "failed")
# `hwfit variants`: the verdict of a quick check of a variant (a short timing and an accuracy check).
# Not a second status of a point: each checked variant is a Measurement with a POINT_STATUS, and its
# verdict is derived from it by hwfit.profile.check_verdict (skipped -> unavailable, failed -> failed,
# measured but outside the model's accuracy tolerance -> inaccurate, else ok).
CHECK_STATUSES = ("ok", "inaccurate", "unavailable", "failed")


def is_usable(status: str) -> bool:
    """Whether a point with this status has a timing worth using."""
    return status in USABLE_POINT_STATUSES


# `hwfit check`: the verdict on one metric of one variant against the baseline, from best to worst.
# incomparable = the two sides could not be compared (a failed or missing measurement, too few rounds).
GATE_VERDICTS = ("improved", "pass", "warn", "fail", "incomparable")
