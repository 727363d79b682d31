"""Peer: Ray Serve (HTTP proxy actor, one replica actor) with `@serve.batch(max_batch_size,
batch_wait_timeout_s)` and max_ongoing_requests raised so the batcher can fill. Route
/v2/models/<name>/infer; the body is the KServe v2 JSON request, decoded and answered by the shared
helpers."""

from __future__ import annotations

import os
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
# Ray's local-only mode (its default on macOS/Windows): the node's address is 127.0.0.1, not the
# machine's routable one, so Ray's own processes talk over loopback only.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
from _common import decode_kserve_json, encode_kserve_json, exit_on_sigterm, io_names, make_session, run_batch, settings
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

CONFIG = settings()


@serve.deployment(
    num_replicas=1,
    max_ongoing_requests=max(256, 4 * CONFIG.max_batch_size),
    ray_actor_options={"num_cpus": 1},
)
class Encoder:
    def __init__(self):
        self.session = make_session(CONFIG)
        self.input_names, self.output_name = io_names(self.session)

    @serve.batch(max_batch_size=CONFIG.max_batch_size, batch_wait_timeout_s=CONFIG.batch_delay_ms / 1000.0)
    async def infer_batch(self, requests: list) -> list:
        return run_batch(self.session, self.input_names, self.output_name, requests)

    async def __call__(self, request: Request) -> JSONResponse:
        inputs = decode_kserve_json(await request.json())
        output = await self.infer_batch(inputs)
        return JSONResponse(encode_kserve_json(CONFIG.model_name, self.output_name, output))


def main() -> None:
    exit_on_sigterm()
    # the bench runs each peer in a temporary folder, removed after the run: Ray's session files too
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        _node_ip_address=CONFIG.host,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        _temp_dir=os.path.join(os.getcwd(), "ray"),
    )
    try:
        serve.start(http_options={"host": CONFIG.host, "port": CONFIG.port})
        serve.run(Encoder.bind(), route_prefix=f"/v2/models/{CONFIG.model_name}/infer")
        while True:
            time.sleep(1)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
