"""What differs between the baseline's environment and the candidate's: the model, hwfit and the
libraries (which explain a change), and the hardware (which makes a stored comparison unsound)."""

from __future__ import annotations

from dataclasses import dataclass

from hwfit.store import Environment

# (field, label, sound): a change in an unsound field means the two sides ran on different hardware
# or limits, so a timing difference says nothing about the code. Fields of Environment.extra are
# looked up there. An unknown value (an older run did not record it) is listed but never unsound.
_FIELDS = (
    ("hwfit", "hwfit", True),
    ("python", "Python", True),
    ("numpy", "numpy", True),
    ("onnxruntime", "ONNX Runtime", True),
    ("torch", "PyTorch", True),
    ("openvino", "OpenVINO", True),
    ("cuda", "CUDA", True),
    ("nvidia_driver", "NVIDIA driver", True),
    ("cpu_model", "CPU model", False),
    ("gpu_names", "GPUs", False),
    ("machine", "architecture", False),
    ("cpu_count", "CPU count", False),
    ("usable_cores", "usable cores", False),
    ("cpu_governor", "CPU governor", False),
    ("container_cpu_limit", "container CPU limit", False),
    ("container_memory_limit_bytes", "container memory limit", True),
    ("hostname_hash", "host (hash)", True),
)


@dataclass(frozen=True)
class EnvChange:
    """One field that differs; `sound` False means timings across it cannot be compared."""

    field: str
    label: str
    baseline: str | None
    candidate: str | None
    sound: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def environment_values(environment: Environment, model_hash: str | None) -> dict[str, str | None]:
    """The compared fields of one side, as text (None where unknown)."""
    values = {"model": model_hash}
    for name, _, _ in _FIELDS:
        if name == "hwfit":
            value = environment.hwfit_label
        elif hasattr(environment, name):
            value = getattr(environment, name)
        else:
            value = environment.extra.get(name)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value) or "none"
        values[name] = None if value is None else str(value)
    return values


def diff_environments(
    baseline: Environment, candidate: Environment, baseline_model: str | None, candidate_model: str | None
) -> list[EnvChange]:
    """Every compared field whose value differs, the model's content hash first."""
    before = environment_values(baseline, baseline_model)
    after = environment_values(candidate, candidate_model)
    changes = []
    if before["model"] != after["model"]:
        changes.append(
            EnvChange("model", "model (content hash)", _short(before["model"]), _short(after["model"]), True)
        )
    for name, label, sound in _FIELDS:
        if before[name] == after[name]:
            continue
        known_both = before[name] is not None and after[name] is not None
        changes.append(EnvChange(name, label, before[name], after[name], sound or not known_both))
    return changes


def unsound_changes(changes: list[EnvChange]) -> list[EnvChange]:
    return [change for change in changes if not change.sound]


def _short(model_hash: str | None) -> str | None:
    return model_hash[:12] if model_hash else None
