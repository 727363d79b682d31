"""Peer: hwfit's own server (HTTP + gRPC front ends over a PlanDispatcher) for a one-pool plan, through
its Python API (`run_server`), for when the `hwfit serve` command is not there. Runs in hwfit's venv.

    python bench/serve_peers/hwfit_peer.py PLAN.yaml    (port from HWFIT_BENCH_PORT; gRPC on port + 1)
"""

from __future__ import annotations

import asyncio
import sys

from _common import settings

from hwfit.plan.schema import load_plan
from hwfit.serve.frontend.server import ServerConfig, run_server
from hwfit.serve.scheduler.dispatcher import PlanDispatcher


def main() -> None:
    config = settings()
    dispatcher = PlanDispatcher(load_plan(sys.argv[1]))
    # run_server turns SIGTERM into a drain and a clean stop
    server_config = ServerConfig(host=config.host, http_port=config.port, grpc_port=config.port + 1)
    asyncio.run(run_server(dispatcher, server_config))


if __name__ == "__main__":
    main()
