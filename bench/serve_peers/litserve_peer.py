"""Peer: LitServe (FastAPI/uvicorn front end, one inference worker process) with its native
batching (max_batch_size, batch_timeout). Route /predict; the body is the KServe v2 JSON request,
decoded and answered by the shared helpers."""

from __future__ import annotations

import litserve as ls
from _common import decode_kserve_json, encode_kserve_json, exit_on_sigterm, io_names, make_session, settings

CONFIG = settings()


class Encoder(ls.LitAPI):
    def setup(self, device):
        self.session = make_session(CONFIG)
        self.input_names, self.output_name = io_names(self.session)

    def decode_request(self, request):
        return decode_kserve_json(request)

    def batch(self, inputs):
        import numpy as np

        return {name: np.concatenate([item[name] for item in inputs], axis=0) for name in self.input_names}

    def predict(self, feed):
        return self.session.run([self.output_name], feed)[0]

    def unbatch(self, output):
        return [output[i : i + 1] for i in range(len(output))]

    def encode_response(self, output):
        return encode_kserve_json(CONFIG.model_name, self.output_name, output)


def main() -> None:
    exit_on_sigterm()
    api = Encoder(max_batch_size=CONFIG.max_batch_size, batch_timeout=CONFIG.batch_delay_ms / 1000.0)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=CONFIG.timeout_s)
    server.run(host=CONFIG.host, port=CONFIG.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
