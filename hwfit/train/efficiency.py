"""Achieved FLOP/s of a training step against this machine's measured matmul ceiling and the spec
(or computed) peak: model FLOPs utilisation, both ways, each saying where its denominator came from."""

from __future__ import annotations

from typing import Any

from hwfit.hardware import measure_ceilings, peak_flops


def step_dtype(changes: dict[str, Any]) -> str:
    """The matmul dtype that bounds a step: the autocast precision, else fp32."""
    return {"bf16": "bf16", "fp16": "fp16"}.get(changes.get("amp") or "", "fp32")


def utilisation(result: dict[str, Any], device: str, measure_ceiling: bool = True) -> dict[str, Any]:
    """MFU of `result` (a TrainResult.to_dict()) against the spec peak and the measured ceiling."""
    dtype = step_dtype(result.get("changes", {}))
    achieved = result.get("achieved_flops")
    found: dict[str, Any] = {
        "dtype": dtype,
        "achieved_flops": achieved,
        "flops_how": "counted by torch.utils.flop_counter on one forward + backward, over the mean warm step",
    }
    try:
        spec = peak_flops(device, dtype)
    except Exception as error:  # an unknown device keeps the other figures
        spec, found["peak_reason"] = None, str(error)
    if spec is not None:
        found["peak_flops"] = spec.value
        found["peak_how"] = spec.how
        found["peak_source"] = spec.source
        found["mfu_of_peak"] = achieved / spec.value if achieved else None
    if measure_ceiling:
        ceiling = _matmul_ceiling(device, dtype)
        if ceiling is not None:
            found["ceiling_flops"] = ceiling.value
            found["ceiling_how"] = f"measured: {ceiling.method}"
            found["mfu_of_ceiling"] = achieved / ceiling.value if achieved else None
    return found


def _matmul_ceiling(device: str, dtype: str) -> Any:
    try:
        ceilings = measure_ceilings(device, quick=True)
    except Exception:  # no ceiling here: MFU against the peak only
        return None
    for ceiling in ceilings:
        if ceiling.metric == "matmul_flops" and ceiling.dtype == dtype:
            return ceiling
    return None
