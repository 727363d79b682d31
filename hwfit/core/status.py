"""The status vocabularies: of a measured point, of a profiling run, of a quick variant check."""

POINT_STATUSES = ("ok", "unstable", "failed", "skipped")
# Points whose timing can be used (planned on, plotted): an unstable one is marked, not dropped.
USABLE_POINT_STATUSES = ("ok", "unstable")
RUN_STATUSES = ("running", "complete", "interrupted", "failed")
# `hwfit variants`: a quick check of each variant (a short timing and an accuracy check).
CHECK_STATUSES = ("ok", "inaccurate", "unavailable", "failed")


def is_usable(status: str) -> bool:
    """Whether a point with this status has a timing worth using."""
    return status in USABLE_POINT_STATUSES
