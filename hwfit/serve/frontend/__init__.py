"""The front ends: KServe v2 (Open Inference Protocol) over HTTP (`http`, with `openapi`) and gRPC
(`grpc_server`, stubs in `proto/`), the tensor codecs (`codec`), what both share (`common`) and
the server that runs them (`server`). They decode into `hwfit.serve.api.InferRequest` and hand it
to a Dispatcher, which checks it against the model; no scheduling and no model checks here.
Public names are exported by `hwfit.serve`."""
