"""Planning: SLOs, serving-latency models and the choice of a deployment; pure functions of measurements."""

from hwfit.plan.slo import OBJECTIVES, DeviceAllowance, Slo, SloError, load_slo, parse_slo

__all__ = ["OBJECTIVES", "DeviceAllowance", "Slo", "SloError", "load_slo", "parse_slo"]
