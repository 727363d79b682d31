"""Peer: the Triton Inference Server (C++ core, HTTP front end, dynamic batcher) through PyTriton,
calling the shared ORT session from PyTriton's Python inference callable. Triton's own protocol:
KServe v2 over HTTP, JSON and the binary tensor extension."""

from __future__ import annotations

import numpy as np
from _common import exit_on_sigterm, io_names, make_session, settings
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def main() -> None:
    exit_on_sigterm()
    config = settings()
    session = make_session(config)
    input_names, output_name = io_names(session)
    output_dim = session.get_outputs()[0].shape[-1]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {output_name: session.run([output_name], {name: inputs[name] for name in input_names})[0]}

    triton_config = TritonConfig(
        http_address=config.host,
        http_port=config.port,
        grpc_address=config.host,
        grpc_port=config.port + 1,
        allow_metrics=False,
        log_verbose=0,
    )
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name=config.model_name,
            infer_func=infer,
            inputs=[Tensor(name=name, dtype=np.int64, shape=(-1,)) for name in input_names],
            outputs=[Tensor(name=output_name, dtype=np.float32, shape=(int(output_dim),))],
            config=ModelConfig(
                max_batch_size=config.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=int(config.batch_delay_ms * 1000)),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
