"""Profiling: what a model really costs on each variant. For now a quick check of every variant
(accuracy against fp32, short timing rounds); the full sweep and its statistics come next."""

from hwfit.profile.quick import QuickResult, quick_check, reference_outputs, run_in_batches

__all__ = ["QuickResult", "quick_check", "reference_outputs", "run_in_batches"]
