"""Code generated from proto/pdp/v1/*.proto by `make generate` (not in git).

Only pdp.server and pdp.client import it; the rest of pdp knows nothing of protobuf.
"""
