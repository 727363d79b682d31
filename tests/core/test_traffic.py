"""Traffic specs: parsing, errors that name the field, and arrivals whose rate matches the shape."""

import numpy as np
import pytest

from hwfit.core import TrafficError, parse_duration_s, parse_traffic, read_trace


@pytest.mark.parametrize(
    ("spec", "mean_rps"),
    [
        ("poisson:200", 200.0),
        ("constant:50", 50.0),
        ("diurnal:300,100,20s", 200.0),  # mean of the sine over whole periods
        ("burst:20,220,10,2", 60.0),  # 20 for 8 s, 220 for 2 s of every 10
        ("steps:100@5,300@5", 200.0),
    ],
)
def test_arrivals_follow_the_shape_mean(spec, mean_rps):
    traffic = parse_traffic(spec)
    duration = traffic.natural_duration_s * 3 if not spec.startswith("steps") else traffic.natural_duration_s
    arrivals = traffic.arrivals(duration, seed=3)
    assert np.all(np.diff(arrivals) >= 0) and arrivals[0] >= 0 and arrivals[-1] < duration
    assert len(arrivals) / duration == pytest.approx(mean_rps, rel=0.06)
    assert traffic.mean_rps(duration) == pytest.approx(mean_rps, rel=0.02)


def test_poisson_gaps_are_exponential():
    gaps = np.diff(parse_traffic("poisson:100").arrivals(200, seed=1))
    assert gaps.mean() == pytest.approx(0.01, rel=0.03)
    assert gaps.std() == pytest.approx(0.01, rel=0.05)  # exponential: std = mean


def test_diurnal_peaks_half_a_period_in():
    traffic = parse_traffic("diurnal:100,10,1h")
    assert traffic.rate_at(0) == pytest.approx(10)
    assert traffic.rate_at(1800) == pytest.approx(100)
    arrivals = traffic.arrivals(3600, seed=2)
    first_quarter = np.count_nonzero(arrivals < 900)
    middle = np.count_nonzero((arrivals >= 1350) & (arrivals < 2250))
    assert middle > 2.5 * first_quarter


def test_burst_rate_and_scaling():
    traffic = parse_traffic("burst:10,100,60,10")
    assert traffic.rate_at(5) == 10 and traffic.rate_at(55) == 100 and traffic.rate_at(65) == 10
    doubled = traffic.scaled(2)
    assert doubled.peak_rps == 200 and doubled.rate_at(5) == 20
    assert parse_traffic(doubled.spec).rate_at(55) == 200  # its spec parses back to itself


def test_same_seed_same_arrivals():
    a = parse_traffic("poisson:50").arrivals(10, seed=7)
    b = parse_traffic("poisson:50").arrivals(10, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, parse_traffic("poisson:50").arrivals(10, seed=8))


def test_trace_with_header_absolute_times_unsorted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("request,scheduled_s\na,1000.5\nb,1000.0\nc,1001.0\nd,1002.0\n")
    trace = parse_traffic(str(path))  # a .csv alone is a trace
    assert list(trace.arrivals()) == [0.0, 0.5, 1.0]  # ends at its span; times relative and sorted
    assert len(trace.times_s) == 4
    assert trace.scaled(2).times_s[-1] == pytest.approx(1.0)  # twice the rate: half the time


def test_trace_without_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("0\n0.1\n0.2\n0.3\n")
    assert len(read_trace(path).times_s) == 4


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("poisson:-3", "RATE"),
        ("poisson:abc", "RATE"),
        ("poisson", "KIND:ARGS"),
        ("diurnal:10,20,60", "TROUGH"),
        ("diurnal:10,5", "PEAK,TROUGH,PERIOD"),
        ("diurnal:10,5,soon", "PERIOD"),
        ("burst:1,10,5,10", "FOR"),
        ("steps:10", "RATE@FOR"),
        ("steps:0@5", "rate 0"),
        ("zipf:1", "unknown kind"),
        ("trace:", "no file"),
    ],
)
def test_bad_specs_name_the_field(spec, names):
    with pytest.raises(TrafficError, match=names):
        parse_traffic(spec)


def test_bad_trace_files_name_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("t\n0\n0.5\noops\n")
    with pytest.raises(TrafficError, match="row 4"):
        parse_traffic(f"trace:{path}")
    path.write_text("latency_ms\n3\n")
    with pytest.raises(TrafficError, match="no timestamp column"):
        read_trace(path)
    path.write_text("")
    with pytest.raises(TrafficError, match="empty"):
        read_trace(path)


def test_durations():
    assert parse_duration_s("90", "x") == 90
    assert parse_duration_s("10m", "x") == 600
    assert parse_duration_s("1.5h", "x") == 5400
    assert parse_duration_s("250ms", "x") == 0.25
    with pytest.raises(TrafficError, match="not a duration"):
        parse_duration_s("3 weeks", "x")
