"""Fuzz the HTTP front end from its own OpenAPI document with schemathesis: bounded examples per
operation, positive and negative data; no response may be a 5xx, each must match the document
(status, content type, body schema), and the server must still answer health afterwards."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(90)

EXAMPLES_PER_OPERATION = 12
TIME_LIMIT_S = 25.0


def _checks() -> list:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _fuzz(strategy, label: str, base_url: str, statuses: list, max_examples: int) -> None:
    """Send `max_examples` cases drawn from `strategy` (the same ones every run) and check each answer."""
    from hypothesis import HealthCheck, Phase, given, settings

    checks = _checks()

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,  # the same examples every run: a failure reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=strategy)
    def run(case):
        response = case.call_and_validate(base_url=base_url, checks=checks, timeout=10)
        statuses.append((label, response.status_code))

    run()


def test_fuzzed_requests_get_no_5xx_and_match_the_document(tiny_server):
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from hypothesis.strategies import one_of

    schema = schemathesis.openapi.from_url(tiny_server.http_url + "/v2/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    # every route but the document itself, which schemathesis leaves out
    assert "POST /v2/models/{name}/infer" in [op.label for op in operations] and len(operations) == 13
    operations.sort(key=lambda op: "infer" not in op.label)  # infer first: it carries the most logic
    statuses: list[tuple[str, int]] = []
    stop_at = time.monotonic() + TIME_LIMIT_S
    fuzzed = 0
    for operation in operations:
        if time.monotonic() > stop_at:
            break
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            try:
                _fuzz(strategy, operation.label, tiny_server.http_url, statuses, EXAMPLES_PER_OPERATION)
            except Unsatisfiable:
                # nothing to negate (no parameters, no body): no negative case exists
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
        fuzzed += 1
    assert fuzzed >= 2, "the time limit stopped the fuzz before it covered the infer operations"
    for operation in operations[:2]:  # the infer operations, from the document's example body
        examples = one_of(schema.get_strategies_from_examples(operation))
        _fuzz(examples, operation.label, tiny_server.http_url, statuses, max_examples=6)

    infer_codes = {code for label, code in statuses if label.endswith("/infer")}
    # 200: the document's example; 400: malformed bodies; 404: names other than the served model's
    assert len(statuses) >= 40 and {200, 400, 404} <= infer_codes, (
        f"the fuzz reached too little: {sorted(set(statuses))}"
    )
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(tiny_server.http_address)
    assert client.is_server_live() and client.is_server_ready()
