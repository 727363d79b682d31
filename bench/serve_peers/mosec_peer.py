"""Peer: Mosec (Rust HTTP front end and batcher, Python worker process) with its native dynamic
batching (max_batch_size, max_wait_time). Route /inference; the body is the KServe v2 JSON request,
decoded and answered by the shared helpers."""

from __future__ import annotations

import json
import sys

from _common import decode_kserve_json, encode_kserve_json, io_names, make_session, run_batch, settings
from mosec import Server, Worker

CONFIG = settings()


class Encoder(Worker):
    def __init__(self):
        super().__init__()
        self.session = make_session(CONFIG)
        self.input_names, self.output_name = io_names(self.session)

    def deserialize(self, data: bytes):
        return decode_kserve_json(json.loads(data))

    def forward(self, data: list) -> list:
        return run_batch(self.session, self.input_names, self.output_name, data)

    def serialize(self, data) -> bytes:
        return json.dumps(encode_kserve_json(CONFIG.model_name, self.output_name, data)).encode()


def main() -> None:
    # Mosec reads its own flags from sys.argv; ours came through the environment.
    timeout_ms = int(CONFIG.timeout_s * 1000)
    sys.argv = [
        sys.argv[0],
        "--address",
        CONFIG.host,
        "--port",
        str(CONFIG.port),
        "--timeout",
        str(timeout_ms),
        "--log-level",
        "warning",
    ]
    server = Server()
    server.append_worker(
        Encoder, num=1, max_batch_size=CONFIG.max_batch_size, max_wait_time=max(1, round(CONFIG.batch_delay_ms))
    )
    server.run()


if __name__ == "__main__":
    main()
