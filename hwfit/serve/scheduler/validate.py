"""The one check of a request on the serving path, made by the dispatcher before it queues or runs
it: its inputs against the model's spec (`InputSpec.validate` in hwfit.models: names, dtypes,
shapes, shared dims, the batch within max_batch_size, finite floats) and its requested outputs
against the model's outputs. Past it nothing checks again: workers and runners run unchecked."""

from __future__ import annotations

from hwfit.core import InputSpecError
from hwfit.models import Model
from hwfit.serve.api import BadRequest, InferRequest


def validate_request(request: InferRequest, model: Model, max_batch_size: int | None) -> None:
    """Raise BadRequest (HTTP 400, gRPC INVALID_ARGUMENT) with the models layer's message if `request`
    does not fit `model`; `max_batch_size` None: no limit on the batch (a model that does not batch)."""
    try:
        model.inputs.validate(request.inputs, max_batch_size=max_batch_size, finite=True)
    except InputSpecError as error:
        raise BadRequest(str(error)) from None
    known = list(model.output_names)
    unknown = [name for name in request.requested_outputs or () if name not in known]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown} requested; the model's outputs are {known}")
