"""The gRPC protocol hwfit serves: grpc_service.proto and the stubs generated from it (see generate.py)."""
