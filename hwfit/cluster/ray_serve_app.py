"""The Ray Serve application a `--export ray-serve` config names (`import_path:
hwfit.cluster.ray_serve_app:build`): a KServe v2 HTTP ingress and one deployment per plan pool, each
replica running the pool's variant with `@serve.batch`. Requests go to the plan's primary pool, then
down its fallback order when a pool fails. Imported only inside Ray Serve (it needs `ray[serve]`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import numpy as np
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hwfit.cluster.ray_serve import INGRESS, pool_deployment_name
from hwfit.plan import Plan, load_plan
from hwfit.serve import (
    InferResponse,
    ServeError,
    WorkerSpec,
    datatype_of,
    decode_http_request,
    encode_http_response,
    load_replica,
    pool_variant,
    run_replica_batch,
)

PROTOCOL_STATUS = {"BadRequest": 400, "ModelNotFound": 404, "PayloadTooLarge": 413, "Rejected": 429}


@serve.deployment
class PoolReplica:
    """One replica of one plan pool: the pool's variant, loaded and warmed up as `hwfit serve` does."""

    def __init__(self, plan_path: str, pool_name: str):
        from hwfit.models import load_model

        plan = load_plan(plan_path)
        pool = plan.pool(pool_name)
        model = load_model(plan.model.source)
        spec = WorkerSpec(pool.name, 0, pool.device, model.source, model.inputs, pool_variant(pool, pool.device))
        self.runner, self.info = load_replica(spec)
        self.pool = pool.name
        self.batching: dict = {}
        self.batches = 0
        self.largest_batch = 0

    def reconfigure(self, config: dict) -> None:
        """The plan's batching, from the config's user_config (Ray applies it before the first request)."""
        self.infer.set_max_batch_size(int(config["max_batch_size"]))
        self.infer.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
        self.batching = dict(config)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def infer(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(requests))
        return await asyncio.to_thread(self._run_batch, requests)

    def stats(self) -> dict:
        """What this replica was configured with and has batched (requests per batch, not samples)."""
        return {"batching": self.batching, "batches": self.batches, "largest_batch": self.largest_batch}

    def _run_batch(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Requests whose tensors share their trailing shapes run as one batch (joined on axis 0)."""
        answers: list[dict | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, inputs in enumerate(requests):
            groups[tuple((name, array.shape[1:], array.dtype.str) for name, array in sorted(inputs.items()))].append(
                index
            )
        for members in groups.values():
            joined = {name: np.concatenate([requests[i][name] for i in members]) for name in requests[members[0]]}
            outputs, _, _ = run_replica_batch(self.runner, joined)
            start = 0
            for i in members:
                size = next(iter(requests[i].values())).shape[0]
                answers[i] = {name: array[start : start + size] for name, array in outputs.items()}
                start += size
        return answers


@serve.deployment
class KServeV2:
    """The KServe v2 HTTP ingress: metadata, health, and infer routed to the plan's pools in order."""

    def __init__(self, plan_path: str, pools: dict):
        self.plan: Plan = load_plan(plan_path)
        self.pools = pools  # pool name -> DeploymentHandle
        order = [p.name for p in self.plan.pools if p.role == "primary"] + list(self.plan.fallback)
        self.order = list(dict.fromkeys(order + [p.name for p in self.plan.pools]))
        self.name = self.plan.model.name
        self.metadata = _metadata(self.plan)
        self._outputs: tuple[str, ...] = ()

    async def __call__(self, request: Request) -> Response:
        parts = [part for part in request.url.path.split("/") if part]
        if parts in (["v2"], ["v2", "health", "live"], ["v2", "health", "ready"]):
            return JSONResponse({"name": "hwfit-on-ray-serve", "live": True, "ready": True})
        if parts == ["v2", "models"]:
            return JSONResponse({"models": [{"name": self.name, "state": "READY"}]})
        if len(parts) >= 3 and parts[:2] == ["v2", "models"]:
            if parts[2] != self.name:
                return JSONResponse({"error": f"no model {parts[2]!r}; this application serves {self.name!r}"}, 404)
            if request.method == "POST" and parts[-1] == "infer":
                return await self._infer(request)
            return JSONResponse(self.metadata)
        return JSONResponse({"error": f"no route {request.url.path}"}, 404)

    async def _infer(self, request: Request) -> Response:
        body = await request.body()
        try:
            decoded = decode_http_request(
                body, request.headers.get("inference-header-content-length"), self.name, None, self._outputs
            )
        except ServeError as error:
            return JSONResponse({"error": str(error)}, PROTOCOL_STATUS.get(type(error).__name__, 400))
        failures = []
        for pool in self.order:
            try:
                outputs = await self.pools[pool].infer.remote(decoded.inputs)
            except Exception as error:  # a pool that cannot answer: the next in the fallback order
                failures.append(f"{pool}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
                continue
            self._outputs = tuple(outputs)
            answer = InferResponse(self.name, "1", outputs, id=decoded.id, pool=pool)
            data, json_length = encode_http_response(answer, decoded)
            headers = {} if json_length is None else {"Inference-Header-Content-Length": str(json_length)}
            return Response(data, media_type="application/json", headers=headers)
        return JSONResponse({"error": "no pool could answer: " + "; ".join(failures)}, 500)


def _metadata(plan: Plan) -> dict:
    """KServe v2 model metadata from the model's input spec (a named dimension, such as the batch, is -1)."""
    from hwfit.models import load_model

    model = load_model(plan.model.source)
    inputs = [
        {
            "name": tensor.name,
            "datatype": datatype_of(tensor.dtype),
            "shape": [dim if isinstance(dim, int) else -1 for dim in tensor.shape],
        }
        for tensor in model.inputs.tensors
    ]
    return {"name": plan.model.name, "versions": ["1"], "platform": "hwfit on Ray Serve", "inputs": inputs}


def build(args: dict):
    """The application for `serve deploy`: args {plan: path of the plan file}."""
    plan_path = args["plan"]
    plan = load_plan(plan_path)
    pools = {
        pool.name: PoolReplica.options(name=pool_deployment_name(pool.name)).bind(plan_path, pool.name)
        for pool in plan.pools
    }
    return KServeV2.options(name=INGRESS).bind(plan_path, pools)
