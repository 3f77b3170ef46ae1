"""The gRPC service: the only package that imports grpc and the generated pdp.v1 code."""
