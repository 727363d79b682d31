"""`hwfit.load` against a real `hwfit serve` front end on 127.0.0.1: open and closed loop, JSON and
binary tensors, inputs from metadata and from files, records replayable as a trace, refusals
counted per reason, timeouts and cancellation at the drain. Each run lasts a second or two."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwfit.core import parse_traffic
from hwfit.load import CSV_COLUMNS, LoadConfig, LoadError, Payload, check_url, run_load
from hwfit.load.target import binary_body, json_body
from tests.load.conftest import SLOW_CAPACITY_RPS, SLOW_CURVE_MS, slow_server


def _outcomes(result) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in result.records:
        counts[record.outcome] = counts.get(record.outcome, 0) + 1
    return counts


@pytest.mark.timeout(60)
def test_open_loop_sends_the_poisson_schedule_and_times_from_it(tiny_server):
    config = LoadConfig(url=tiny_server.http_url, traffic="poisson:80", duration_s=3.0, warmup_s=0.5, seed=3)
    result = run_load(config)
    schedule = parse_traffic("poisson:80").arrivals(3.0, seed=3)
    # every scheduled time was sent, once, in order: the schedule is the traffic's own
    assert np.allclose([r.scheduled_s for r in result.records], schedule)
    assert _outcomes(result) == {"ok": len(schedule)}
    summary = result.summary()
    in_window = np.count_nonzero((schedule >= 0.5) & (schedule < 3.0))
    assert summary["offered_rps"] == pytest.approx(in_window / 2.5)
    assert summary["offered_rps"] == pytest.approx(80, rel=0.3)  # a Poisson draw of ~200 arrivals
    assert summary["answered_rps"] == pytest.approx(summary["offered_rps"], rel=0.1)
    assert summary["ok"] == in_window and summary["errors"] == summary["rejected"] == summary["cancelled"] == 0
    # latency counts from the schedule: never shorter than the send-to-answer time
    for r in result.records:
        assert r.sent_s >= r.scheduled_s - 1e-6
        assert r.latency_ms >= (r.ended_s - r.sent_s) * 1000 - 1e-6
    lateness = sorted(r.late_ms for r in result.records)
    assert lateness[len(lateness) // 2] < 20  # sends leave on schedule (loose: the machine is shared)
    assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["p999_ms"] <= summary["max_ms"]


@pytest.mark.timeout(60)
def test_closed_loop_keeps_n_requests_in_flight_and_no_more(tiny_server):
    result = run_load(LoadConfig(url=tiny_server.http_url, concurrency=3, duration_s=1.5, warmup_s=0.3))
    assert result.mode == "closed" and _outcomes(result) == {"ok": len(result.records)}
    events = sorted([(r.sent_s, 1) for r in result.records] + [(r.ended_s, -1) for r in result.records])
    in_flight, peak = 0, 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 3
    assert all(r.sent_s == r.scheduled_s for r in result.records)  # closed loop: timed from the send
    assert result.summary()["late"] == 0
    # the clients stop sending at the duration
    assert max(r.sent_s for r in result.records) < 1.5


@pytest.mark.timeout(60)
def test_binary_and_json_tensors_both_answered_and_say_which(tiny_server):
    for binary in (False, True):
        result = run_load(
            LoadConfig(url=tiny_server.http_url, concurrency=2, duration_s=0.8, warmup_s=0.1, binary=binary)
        )
        assert _outcomes(result) == {"ok": len(result.records)} and result.records
        assert ("binary tensors" if binary else "JSON tensors") in result.inputs
        assert result.model == "tiny" and "only model listed" in result.model_how


def test_binary_body_decodes_as_the_server_reads_it():
    from hwfit.serve.frontend.codec import decode_http_request

    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    ids = np.array([[1, 2, 3, 4]], dtype=np.int64)
    tensors = {"x": ("FP32", x), "ids": ("INT64", ids)}
    body, header_length = binary_body(tensors, ["y"])
    decoded = decode_http_request(body, str(header_length), "tiny", None, ("y",))
    assert np.array_equal(decoded.inputs["x"], x) and np.array_equal(decoded.inputs["ids"], ids)
    decoded = decode_http_request(json_body(tensors), None, "tiny", None, ("y",))
    assert np.array_equal(decoded.inputs["x"], x) and decoded.inputs["ids"].dtype == np.int64


@pytest.mark.timeout(60)
def test_inputs_from_a_request_json_and_an_npz_are_sent_as_they_are(tiny_server, tmp_path):
    request = {
        "inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.5, 1, 2, 3]},
            {"name": "ids", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]},
        ]
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    np.savez(tmp_path / "inputs.npz", x=np.ones((2, 4), np.float32), ids=np.zeros((2, 4), np.int64))
    for name in ("request.json", "inputs.npz"):
        result = run_load(
            LoadConfig(
                url=tiny_server.http_url, concurrency=1, duration_s=0.5, warmup_s=0.1, input_file=tmp_path / name
            )
        )
        assert _outcomes(result) == {"ok": len(result.records)} and name in result.inputs
    # a file the model cannot take: every request is an error, with the server's reason, by kind
    np.savez(tmp_path / "wrong.npz", x=np.ones((1, 5), np.float32), ids=np.zeros((1, 5), np.int64))
    result = run_load(
        LoadConfig(
            url=tiny_server.http_url, concurrency=1, duration_s=0.5, warmup_s=0.1, input_file=tmp_path / "wrong.npz"
        )
    )
    summary = result.summary()
    assert summary["ok"] == 0 and summary["errors"] == summary["counted"] > 0
    (kind,) = summary["error_kinds"]
    assert kind.startswith("HTTP 400: ") and "x" in kind


@pytest.mark.timeout(60)
def test_shape_override_fills_dynamic_dims_and_a_misfit_is_named(tiny_server):
    result = run_load(
        LoadConfig(url=tiny_server.http_url, concurrency=1, duration_s=0.4, warmup_s=0.1, shape=["x=3,4", "ids=3,4"])
    )
    assert "x FP32 [3, 4]" in result.inputs and _outcomes(result) == {"ok": len(result.records)}
    with pytest.raises(LoadError, match=r"--shape x=3,5 does not fit the model's shape \[-1, 4\]"):
        run_load(LoadConfig(url=tiny_server.http_url, concurrency=1, duration_s=0.4, warmup_s=0.1, shape=["x=3,5"]))
    with pytest.raises(LoadError, match="does not have; its inputs are"):
        run_load(LoadConfig(url=tiny_server.http_url, concurrency=1, duration_s=0.4, warmup_s=0.1, shape=["z=1"]))


@pytest.mark.timeout(60)
def test_records_csv_replays_as_a_trace(tiny_server, tmp_path):
    first = run_load(LoadConfig(url=tiny_server.http_url, traffic="poisson:60", duration_s=1.5, warmup_s=0.2, seed=1))
    path = first.write_records_csv(tmp_path / "run.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS
    trace = parse_traffic(f"trace:{path}")
    scheduled = np.array([r.scheduled_s for r in first.records])
    assert np.allclose(trace.times_s, scheduled - scheduled[0], atol=2e-6)
    replay = run_load(LoadConfig(url=tiny_server.http_url, traffic=f"trace:{path}", duration_s=1.5, warmup_s=0.2))
    # the replay sends at the recorded times (shifted to start at 0), all but none after the duration
    expected = [t for t in trace.times_s if t < 1.5]
    assert np.allclose([r.scheduled_s for r in replay.records], expected)


@pytest.mark.timeout(90)
def test_overload_refusals_are_counted_per_reason_and_nothing_is_lost(tmp_path):
    server = slow_server(tmp_path, latency_p99_ms=100.0)
    try:
        rate = 3 * SLOW_CAPACITY_RPS
        result = run_load(LoadConfig(url=server.http_url, traffic=f"poisson:{rate:g}", duration_s=2.0, warmup_s=0.3))
    finally:
        server.stop()
    summary = result.summary()
    assert summary["ok"] > 0 and summary["rejected"] > 0
    assert summary["errors"] == 0 and summary["cancelled"] == 0
    assert summary["ok"] + summary["rejected"] == summary["counted"]
    # at 3x capacity at least half is refused; what was answered is capped by the curve
    assert summary["rejected"] >= 0.4 * summary["counted"]
    assert summary["answered_rps"] <= SLOW_CAPACITY_RPS * 1.15
    assert sum(summary["rejected_reasons"].values()) == summary["rejected"]
    # reasons are the server's own text, numbers folded into N so one kind is one row
    assert all(("no pool can answer within N ms" in k) or ("queue" in k) for k in summary["rejected_reasons"]), summary[
        "rejected_reasons"
    ]
    rejected = [r for r in result.records if r.outcome == "rejected"]
    assert all(r.status == 429 and r.reason for r in rejected)
    assert any(ch.isdigit() for ch in rejected[0].reason)  # the record keeps the exact text
    # refusals come back at once; answers wait at least the curve's 20 ms
    answered = sorted(r.latency_ms for r in result.records if r.outcome == "ok")
    assert answered[0] >= SLOW_CURVE_MS[1] - 1


@pytest.mark.timeout(60)
def test_timeouts_and_requests_cancelled_at_the_drain_are_counted(tmp_path):
    server = slow_server(tmp_path, latency_p99_ms=60_000.0, curve_ms={1: 600.0})
    try:
        timed_out = run_load(
            LoadConfig(url=server.http_url, concurrency=2, duration_s=0.5, warmup_s=0.0, timeout_s=0.2, drain_s=2.0)
        )
        cancelled = run_load(
            LoadConfig(url=server.http_url, concurrency=2, duration_s=0.3, warmup_s=0.0, timeout_s=10.0, drain_s=0.1)
        )
    finally:
        server.stop()
    assert timed_out.summary()["error_kinds"].get("timeout", 0) >= 2
    assert _outcomes(timed_out).get("ok", 0) == 0
    assert _outcomes(cancelled) == {"cancelled": 2}
    assert all(r.reason == "cancelled at the drain" for r in cancelled.records)


def test_a_host_that_is_not_loopback_is_refused_unless_allowed():
    for url in ("http://10.1.2.3:8000", "http://example.com:8000", "http://192.168.0.1"):
        with pytest.raises(LoadError, match="--allow-remote"):
            run_load(LoadConfig(url=url, concurrency=1, duration_s=0.5, warmup_s=0.1))
    # prepared requests (the bench's) are held to the same rule
    payload = Payload("http://10.1.2.3:8000/predict", {}, (b"{}",), "prepared")
    with pytest.raises(LoadError, match="--allow-remote"):
        run_load(LoadConfig(payload=payload, concurrency=1, duration_s=0.5, warmup_s=0.1))
    # a model's or infer URL names the same server
    assert check_url("http://127.0.0.1:8000/v2/models/tiny/infer", False) == "http://127.0.0.1:8000"
    assert check_url("http://[::1]:8000/", False) == "http://[::1]:8000"
    # allowed, it goes on (and then fails to connect to a reserved address: TEST-NET-1)
    with pytest.raises(LoadError, match="cannot reach"):
        run_load(
            LoadConfig(
                url="http://192.0.2.1:9", concurrency=1, duration_s=0.5, warmup_s=0.1, allow_remote=True, timeout_s=0.5
            )
        )


def test_bad_url_unreachable_server_and_unknown_model_say_what_to_do(tiny_server):
    import socket

    for url in ("127.0.0.1:8000", "ftp://127.0.0.1:8000", "https://127.0.0.1:8000", "http://127.0.0.1:notaport"):
        with pytest.raises(LoadError, match=r"expected http://HOST:PORT|port is not a number"):
            run_load(LoadConfig(url=url, concurrency=1, duration_s=0.5, warmup_s=0.1))
    with socket.socket() as probe:  # a free port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LoadError, match=r"cannot reach .*is the server running there\? \(start one with `hwfit serve"):
        run_load(LoadConfig(url=f"http://127.0.0.1:{port}", concurrency=1, duration_s=0.5, warmup_s=0.1))
    with pytest.raises(LoadError, match=r"has no model 'nope'.*check --model"):
        run_load(LoadConfig(url=tiny_server.http_url, model="nope", concurrency=1, duration_s=0.5, warmup_s=0.1))


def test_settings_out_of_range_are_named():
    cases = [
        (dict(traffic="poisson:5", concurrency=2), "not both"),
        (dict(concurrency=0), "--concurrency 0"),
        (dict(duration_s=1.0, warmup_s=1.0), "--warmup 1.0"),
        (dict(duration_s=0.0), "--duration 0.0"),
        (dict(timeout_s=0.0), "--timeout"),
        (dict(max_requests=0), "--max-requests"),
    ]
    for settings, message in cases:
        with pytest.raises(LoadError, match=message):
            run_load(LoadConfig(url="http://127.0.0.1:1", **settings))


@pytest.mark.timeout(60)
def test_max_requests_bounds_the_run(tiny_server):
    result = run_load(
        LoadConfig(url=tiny_server.http_url, traffic="poisson:200", duration_s=2.0, warmup_s=0.0, max_requests=25)
    )
    assert len(result.records) == 25 and result.planned_requests == 25
    closed = run_load(LoadConfig(url=tiny_server.http_url, concurrency=2, duration_s=2.0, warmup_s=0.0, max_requests=7))
    assert len(closed.records) == 7
