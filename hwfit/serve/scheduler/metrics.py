"""Prometheus metrics of one dispatcher, in its own registry (no process-global state): requests
by pool and outcome, latency split into queue / batch formation / compute, batch sizes, queue
depth, padding, worker faults, device telemetry, and the Triton-named twins Triton dashboards
already graph (`nv_inference_*`, `nv_gpu_*`, `nv_cpu_*`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hwfit.core import is_gpu
from hwfit.telemetry import DeviceSample, TelemetryError, sample_device

log = logging.getLogger("hwfit.serve")

OUTCOMES = ("success", "rejected", "shed", "failed", "retried")
LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.0,
    5.0,
    10.0,
)
LOOP_LAG_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# Triton's failure reasons: REJECTED (refused at admission or shed), CANCELED, BACKEND (the
# model failed), OTHER (deadline passed, server stopping).
TRITON_REASON = {"rejected": "REJECTED", "shed": "REJECTED", "backend": "BACKEND", "other": "OTHER"}


@dataclass
class TritonTally:
    """Cumulative figures behind the nv_inference_* twins."""

    success: int = 0
    failure: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    inference_count: int = 0  # samples
    exec_count: int = 0  # batches
    request_duration_us: float = 0.0
    queue_duration_us: float = 0.0
    compute_infer_duration_us: float = 0.0


@dataclass(frozen=True)
class _PoolSeries:
    """One pool's children of the metrics every request or batch touches."""

    success: object
    latency: object
    queue_time: object
    formation_time: object
    compute_time: object
    batch_size: object
    queue_depth: object
    queue_samples: object
    service_ratio: object


class ServeMetrics:
    """Every metric of one dispatcher; `text()` is the Prometheus exposition."""

    def __init__(self, model: str, version: str = "1", devices: tuple[str, ...] = ()):
        self.model = model
        self.version = version
        self.devices = tuple(dict.fromkeys(devices))  # telemetry-capable devices: cpu, cuda:N
        self.registry = CollectorRegistry(auto_describe=True)
        self.triton = TritonTally()
        self.pending_requests = 0
        self._device_samples: dict[str, DeviceSample] = {}
        self._pool_series: dict[str, _PoolSeries] = {}  # an explicit cache of labelled children
        self._make_metrics()
        self.registry.register(_DeviceCollector(self))

    def _make_metrics(self) -> None:
        labels = ("model", "pool")
        reg = self.registry
        self.requests = Counter(
            "hwfit_requests",
            "Requests by pool and outcome (success, rejected, shed, "
            'failed, retried); rejections at admission have pool=""',
            labels + ("outcome",),
            registry=reg,
        )
        self.latency = Histogram(
            "hwfit_request_duration_seconds",
            "Arrival to answer, successful requests",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.queue_time = Histogram(
            "hwfit_request_queue_seconds",
            "Waiting while every replica was busy",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.formation_time = Histogram(
            "hwfit_request_batch_formation_seconds",
            "Waiting for the batch to fill while a replica was free",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.compute_time = Histogram(
            "hwfit_request_compute_seconds",
            "The batch's run, worker round trip included",
            labels,
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.batch_size = Histogram(
            "hwfit_batch_size", "Samples per executed batch", labels, buckets=BATCH_BUCKETS, registry=reg
        )
        self.queue_depth = Gauge("hwfit_queue_depth", "Requests queued", labels, registry=reg)
        self.queue_samples = Gauge("hwfit_queue_samples", "Samples queued", labels, registry=reg)
        self.padding = Counter(
            "hwfit_padding_elements", "Elements added by padding dynamic axes", labels + ("input",), registry=reg
        )
        self.worker_failures = Counter(
            "hwfit_worker_failures", "Worker faults: died, hung, raised, oom, load", labels + ("kind",), registry=reg
        )
        self.worker_restarts = Counter("hwfit_worker_restarts", "Workers restarted after a fault", labels, registry=reg)
        self.oom_splits = Counter(
            "hwfit_oom_splits", "Batches split in two after running out of memory", labels, registry=reg
        )
        self.pool_up = Gauge("hwfit_pool_up", "1 while the pool takes requests", labels, registry=reg)
        self.ready_replicas = Gauge(
            "hwfit_pool_ready_replicas", "Replicas loaded and in rotation", labels, registry=reg
        )
        self.service_ratio = Gauge(
            "hwfit_pool_service_time_ratio",
            "Observed / planned service time (EWMA, all batch sizes)",
            labels,
            registry=reg,
        )
        self.pool_info = Gauge(
            "hwfit_pool_info",
            'The pool\'s plan; emulated="true" for emulated devices',
            labels + ("role", "variant", "device", "emulated"),
            registry=reg,
        )
        self.cache_hits = Counter("hwfit_cache_hits", "Answers from the result cache", ("model",), registry=reg)
        self.cache_misses = Counter("hwfit_cache_misses", "Result-cache lookups that missed", ("model",), registry=reg)
        self.cache_bytes = Gauge("hwfit_cache_bytes", "Bytes held by the result cache", ("model",), registry=reg)
        self.loop_lag = Histogram(
            "hwfit_event_loop_lag_seconds",
            "How late the front end's event loop ran a "
            "timer, beyond its 1 ms resolution: what an arriving request waits unseen",
            buckets=LOOP_LAG_BUCKETS_S,
            registry=reg,
        )
        self.deadline_reserve = Gauge(
            "hwfit_deadline_reserve_seconds",
            "Taken off every deadline at admission: the p99 of the event loop's lag",
            registry=reg,
        )

    # --- recording

    def describe_pool(self, pool: str, role: str, variant: str, device: str) -> None:
        emulated = "true" if device.startswith("emulated") else "false"
        self.pool_info.labels(self.model, pool, role, variant, device, emulated).set(1)
        for outcome in OUTCOMES:
            self.requests.labels(self.model, pool, outcome)  # present at 0 from the start

    def _series(self, pool: str) -> _PoolSeries:
        """The pool's labelled children of the per-request metrics, looked up once (labels() costs
        microseconds a call, and every request makes a dozen)."""
        series = self._pool_series.get(pool)
        if series is None:
            series = self._pool_series[pool] = _PoolSeries(
                self.requests.labels(self.model, pool, "success"),
                self.latency.labels(self.model, pool),
                self.queue_time.labels(self.model, pool),
                self.formation_time.labels(self.model, pool),
                self.compute_time.labels(self.model, pool),
                self.batch_size.labels(self.model, pool),
                self.queue_depth.labels(self.model, pool),
                self.queue_samples.labels(self.model, pool),
                self.service_ratio.labels(self.model, pool),
            )
        return series

    def request_succeeded(
        self, pool: str, total_s: float, queue_s: float, formation_s: float, compute_s: float
    ) -> None:
        series = self._series(pool)
        series.success.inc()
        series.latency.observe(total_s)
        series.queue_time.observe(queue_s)
        series.formation_time.observe(formation_s)
        series.compute_time.observe(compute_s)
        self.triton.success += 1
        self.triton.request_duration_us += total_s * 1e6
        self.triton.queue_duration_us += (queue_s + formation_s) * 1e6
        self.triton.compute_infer_duration_us += compute_s * 1e6

    def loop_lag_sampled(self, lag_s: float, reserve_s: float) -> None:
        self.loop_lag.observe(lag_s)
        self.deadline_reserve.set(reserve_s)

    def request_refused(self, pool: str, outcome: str, reason: str) -> None:
        """outcome: rejected | shed | failed; reason: rejected | shed | backend | other (Triton's)."""
        self.requests.labels(self.model, pool, outcome).inc()
        self.triton.failure[TRITON_REASON[reason]] += 1

    def request_retried(self, pool: str) -> None:
        self.requests.labels(self.model, pool, "retried").inc()

    def batch_executed(
        self, pool: str, samples: int, padded: dict[str, int], oom_splits: int, service_ratio: float
    ) -> None:
        series = self._series(pool)
        series.batch_size.observe(samples)
        series.service_ratio.set(service_ratio)
        for name, count in padded.items():
            self.padding.labels(self.model, pool, name).inc(count)
        if oom_splits:
            self.oom_splits.labels(self.model, pool).inc(oom_splits)
        self.triton.inference_count += samples
        self.triton.exec_count += 1

    def queue_changed(self, pool: str, requests: int, samples: int) -> None:
        series = self._series(pool)
        series.queue_depth.set(requests)
        series.queue_samples.set(samples)

    def pool_state(self, pool: str, up: bool, ready_replicas: int) -> None:
        self.pool_up.labels(self.model, pool).set(1 if up else 0)
        self.ready_replicas.labels(self.model, pool).set(ready_replicas)

    def worker_failed(self, pool: str, kind: str) -> None:
        self.worker_failures.labels(self.model, pool, kind).inc()

    def worker_restarted(self, pool: str) -> None:
        self.worker_restarts.labels(self.model, pool).inc()

    # --- exposition

    def sample_devices(self) -> None:
        """Read every telemetry-capable device once; a device that cannot be read is left out."""
        for device in self.devices:
            try:
                self._device_samples[device] = sample_device(device)
            except (TelemetryError, OSError) as error:
                log.debug("cannot sample %s: %s", device, error)

    def device_samples(self) -> dict[str, DeviceSample]:
        return dict(self._device_samples)

    def text(self) -> str:
        self.sample_devices()
        return generate_latest(self.registry).decode() + self._triton_text()

    def _triton_text(self) -> str:
        """The nv_* twins written by hand: prometheus_client would rename counters to *_total."""
        labels = f'model="{_escape(self.model)}",version="{_escape(self.version)}"'
        tally = self.triton
        lines = []
        _family(
            lines,
            "nv_inference_request_success",
            "counter",
            "Number of successful inference requests",
            [(labels, tally.success)],
        )
        _family(
            lines,
            "nv_inference_request_failure",
            "counter",
            "Number of failed inference requests",
            [
                (f'{labels},reason="{reason}"', tally.failure.get(reason, 0))
                for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER")
            ],
        )
        _family(
            lines,
            "nv_inference_count",
            "counter",
            "Number of inferences performed (samples)",
            [(labels, tally.inference_count)],
        )
        _family(
            lines,
            "nv_inference_exec_count",
            "counter",
            "Number of model executions (batches)",
            [(labels, tally.exec_count)],
        )
        _family(
            lines,
            "nv_inference_request_duration_us",
            "counter",
            "Cumulative request duration in us",
            [(labels, tally.request_duration_us)],
        )
        _family(
            lines,
            "nv_inference_queue_duration_us",
            "counter",
            "Cumulative queue duration in us",
            [(labels, tally.queue_duration_us)],
        )
        _family(
            lines,
            "nv_inference_compute_infer_duration_us",
            "counter",
            "Cumulative compute inference duration in us",
            [(labels, tally.compute_infer_duration_us)],
        )
        _family(
            lines,
            "nv_inference_pending_request_count",
            "gauge",
            "Instantaneous number of pending requests awaiting execution",
            [(labels, self.pending_requests)],
        )
        self._triton_device_text(lines)
        return "\n".join(lines) + "\n"

    def _triton_device_text(self, lines: list[str]) -> None:
        gpus = {d: s for d, s in self._device_samples.items() if is_gpu(d)}
        cpu = self._device_samples.get("cpu")
        for name, kind, doc, attribute in (
            ("nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0)", "utilization"),
            ("nv_gpu_memory_used_bytes", "gauge", "GPU used memory, in bytes", "memory_used_bytes"),
            ("nv_gpu_power_usage", "gauge", "GPU power usage in watts", "power_w"),
            (
                "nv_energy_consumption",
                "counter",
                "GPU energy consumption in joules since the driver loaded",
                "energy_j_total",
            ),
        ):
            values = [(f'gpu_uuid="{device}"', getattr(sample, attribute)) for device, sample in gpus.items()]
            _family(lines, name, kind, doc, [(lab, v) for lab, v in values if v is not None])
        if cpu is not None:
            _family(
                lines,
                "nv_cpu_utilization",
                "gauge",
                "CPU utilization rate [0.0 - 1.0]",
                [("", cpu.utilization)] if cpu.utilization is not None else [],
            )
            _family(
                lines,
                "nv_cpu_memory_used_bytes",
                "gauge",
                "CPU used memory, in bytes",
                [("", cpu.memory_used_bytes)] if cpu.memory_used_bytes is not None else [],
            )


class _DeviceCollector:
    """hwfit_device_* from the samples taken at this scrape."""

    def __init__(self, metrics: ServeMetrics):
        self.metrics = metrics

    def describe(self) -> list:
        return []

    def collect(self):
        samples = self.metrics.device_samples()
        families = {
            "utilization": GaugeMetricFamily(
                "hwfit_device_utilization_ratio", "Busy share 0-1 (cpu: system-wide; cuda: NVML)", labels=["device"]
            ),
            "memory_used_bytes": GaugeMetricFamily(
                "hwfit_device_memory_used_bytes", "Used memory, device-wide", labels=["device"]
            ),
            "power_w": GaugeMetricFamily(
                "hwfit_device_power_watts", "Power draw (measured: NVML or RAPL)", labels=["device"]
            ),
            "energy_j_total": CounterMetricFamily(
                "hwfit_device_energy_joules",
                "Energy counter (NVML: since driver load; RAPL: since first read)",
                labels=["device"],
            ),
        }
        for device, sample in samples.items():
            for attribute, family in families.items():
                value = getattr(sample, attribute)
                if value is not None:
                    family.add_metric([device], float(value))
        yield from families.values()


def _family(lines: list[str], name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> None:
    if not samples:
        return
    lines.append(f"# HELP {name} {doc}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {float(value)!r}" if labels else f"{name} {float(value)!r}")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
