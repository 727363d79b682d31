"""The load generator for any KServe v2 server (`hwfit load URL`): open loop at the send times of a
traffic shape or closed loop with N clients, JSON or binary tensors, inputs from the model's
metadata or a file; latency from the scheduled send, every request recorded."""

from hwfit.load.client import Answer, HttpConnection, ProtocolError, Target
from hwfit.load.page import write_report
from hwfit.load.records import CSV_COLUMNS, OUTCOMES, Record, reason_kind, write_records_csv
from hwfit.load.runner import LATE_MS, LoadConfig, load_json, run_load
from hwfit.load.summary import LoadResult, percentile
from hwfit.load.target import LoadError, Payload, build_payload, check_url, is_loopback

__all__ = [
    "Answer",
    "CSV_COLUMNS",
    "HttpConnection",
    "LATE_MS",
    "LoadConfig",
    "LoadError",
    "LoadResult",
    "OUTCOMES",
    "Payload",
    "ProtocolError",
    "Record",
    "Target",
    "build_payload",
    "check_url",
    "is_loopback",
    "load_json",
    "percentile",
    "reason_kind",
    "run_load",
    "write_records_csv",
    "write_report",
]
