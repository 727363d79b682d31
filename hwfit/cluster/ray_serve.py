"""`hwfit plan ... --export ray-serve`: the plan as a Ray Serve config that `serve deploy` takes unchanged.

One application: a KServe v2 ingress (`KServeV2`) and one deployment per pool (`pool-<name>`), built by
`hwfit.cluster.ray_serve_app:build` from the plan file written beside the config. Ray's pitfalls,
each handled here and said in the file's comments:

- `max_ongoing_requests` (default 5) caps how many requests a replica holds, so also how full a
  `@serve.batch` batch can get: it is set per deployment from the plan's queue bound. Placed inside
  `autoscaling_config` it is silently ignored, so it sits at the deployment's top level.
- `num_cpus` is logical and pins nothing; Ray sets OMP_NUM_THREADS from it. The thread variables
  are set explicitly from the plan's threads (`runtime_env.env_vars`).
- `@serve.batch`'s size and wait are fixed where the code decorates; the plan's values travel in
  `user_config` and are applied in `reconfigure`, so editing the file changes them without code.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from hwfit.cluster.connect import label_resource, thread_env
from hwfit.core import Device, HwfitError
from hwfit.plan import Plan, PoolPlan
from hwfit.simulate import queue_bound_samples

APP_IMPORT_PATH = "hwfit.cluster.ray_serve_app:build"
INGRESS = "KServeV2"
CONFIG_NAME = "serve_config.yaml"
PLAN_NAME = "plan.yaml"
DEFAULT_HTTP_PORT = 8000


def pool_deployment_name(pool: str) -> str:
    return f"pool-{pool}"


def max_ongoing_requests(pool: PoolPlan) -> int:
    """Requests one replica may hold: its share of the pool's queue bound (as `hwfit serve` sets it), and
    never fewer than two batches (one running, one forming), else batches never fill."""
    bound = queue_bound_samples(pool.service_ms, pool.replicas, pool.max_batch_size, None)
    return max(math.ceil(bound / pool.replicas), 2 * pool.max_batch_size)


def deployment_config(pool: PoolPlan) -> dict:
    threads = pool.threads or 1
    options: dict = {
        "num_cpus": threads,
        "num_gpus": 1 if Device.parse(pool.device).is_gpu else 0,
        "runtime_env": {"env_vars": thread_env(threads)},
    }
    if pool.node_group is not None:
        options["resources"] = label_resource(pool.node_group)
    return {
        "name": pool_deployment_name(pool.name),
        "num_replicas": pool.replicas,
        "max_ongoing_requests": max_ongoing_requests(pool),
        "ray_actor_options": options,
        "user_config": {
            "max_batch_size": pool.max_batch_size,
            "batch_wait_timeout_s": round(pool.max_queue_delay_ms / 1000.0, 6),
        },
    }


def serve_config(plan: Plan, plan_path: Path, host: str = "127.0.0.1", port: int = DEFAULT_HTTP_PORT) -> dict:
    """The Serve config (`applications`/`deployments`) for `plan`, whose file is at `plan_path`."""
    if not plan.feasible or not plan.pools:
        raise HwfitError("the plan is infeasible: there are no pools to export to Ray Serve")
    pools = [deployment_config(pool) for pool in plan.pools]
    ingress = {
        "name": INGRESS,
        "num_replicas": 1,
        # the ingress only awaits the pools: it holds every request they may hold together
        "max_ongoing_requests": sum(p["max_ongoing_requests"] * p["num_replicas"] for p in pools),
        "ray_actor_options": {"num_cpus": 0},
    }
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": host, "port": port},
        "applications": [
            {
                "name": plan.model.name,
                "route_prefix": "/",
                "import_path": APP_IMPORT_PATH,
                "args": {"plan": str(plan_path.resolve())},
                "deployments": [ingress, *pools],
            }
        ],
    }


HEADER = """\
# Ray Serve config written by `hwfit plan --export ray-serve` from {plan}.
# Deploy it with `serve deploy {config}` (Ray {ray_hint}); it answers KServe v2 requests:
#   POST http://HOST:{port}/v2/models/{model}/infer
# Pitfalls handled (README, "On a Ray cluster"):
# - max_ongoing_requests is set on each deployment, sized from the plan's queue bound (Ray's default
#   of 5 caps batches; inside autoscaling_config it would be silently ignored);
# - num_cpus pins no core and makes Ray set OMP_NUM_THREADS from it: the thread variables are set
#   from the plan's threads in runtime_env;
# - @serve.batch's max_batch_size and batch_wait_timeout_s come from user_config (applied in reconfigure).
"""


def export_ray_serve(plan: Plan, directory: str | Path, host: str = "127.0.0.1", port: int = DEFAULT_HTTP_PORT) -> Path:
    """Write DIR/plan.yaml and DIR/serve_config.yaml; returns the config's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plan_path = plan.save(directory / PLAN_NAME)
    config = serve_config(plan, plan_path, host, port)
    path = directory / CONFIG_NAME
    header = HEADER.format(plan=PLAN_NAME, config=CONFIG_NAME, ray_hint="2.60", port=port, model=plan.model.name)
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, width=110))
    return path
