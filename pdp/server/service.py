"""The DecisionService handlers: decode, convert, ask the decision point, convert back.

Requests arrive as raw bytes and are decoded here rather than by the gRPC runtime: a message
the runtime cannot decode (garbage, invalid UTF-8, Struct nesting beyond protobuf's limit) would
otherwise fail as INTERNAL before any handler ran, unanswered and unaudited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Never, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from pdp.config import Config
from pdp.decision_point import DecisionPoint
from pdp.engine.values import from_json
from pdp.identity.certificates import identity
from pdp.identity.errors import AuthenticationError
from pdp.server import convert
from pdp.server.convert import InvalidRequestError
from pdp.v1 import decision_pb2 as pb

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name
DECISION_ID_HEADER = "pdp-decision-id"

_log = logging.getLogger("pdp.server")
M = TypeVar("M", bound=Message)


class DecisionService:
    def __init__(self, point: DecisionPoint, config: Config) -> None:
        self.point = point
        self.limits = config.requests
        self.max_batch_items = config.server.max_batch_items

    def check(self, payload: bytes, context: grpc.ServicerContext) -> pb.CheckResponse:
        request = self._decode(pb.CheckRequest, payload, context)
        credential = convert.credential(request.credentials)
        try:
            query, attributes = convert.check_request(request, self.limits)
        except InvalidRequestError as error:
            self._reject(context, convert.credential_kind(request.credentials), str(error))
        caller = caller_identity(context)
        [answer] = self.point.decide(credential, [query], attributes, request.explain, caller)
        return convert.fill_response(pb.CheckResponse(), answer)

    def check_batch(self, payload: bytes, context: grpc.ServicerContext) -> pb.CheckBatchResponse:
        request = self._decode(pb.CheckBatchRequest, payload, context)
        credential = convert.credential(request.credentials)
        try:
            queries, attributes = convert.batch_request(request, self.limits, self.max_batch_items)
        except InvalidRequestError as error:
            self._reject(context, convert.credential_kind(request.credentials), str(error))
        caller = caller_identity(context)
        answers = self.point.decide(credential, queries, attributes, request.explain, caller)
        response = pb.CheckBatchResponse()
        results = response.results
        for answer in answers:
            convert.fill_response(results.add(), answer)
        return response

    def _decode(self, kind: type[M], payload: bytes, context: grpc.ServicerContext) -> M:
        try:
            return kind.FromString(payload)
        except (DecodeError, RecursionError, ValueError):
            self._reject(
                context,
                "unknown",
                f"the request is not a valid {kind.DESCRIPTOR.name} (malformed, or nested "
                "too deeply to decode)",
            )

    def _reject(self, context: grpc.ServicerContext, kind: str, message: str) -> Never:
        decision_id = self.point.reject(kind, message, caller=caller_identity(context))
        context.set_trailing_metadata(((DECISION_ID_HEADER, decision_id),))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


def caller_identity(context: grpc.ServicerContext) -> dict[str, Any]:
    """The calling service's identity from its mutual-TLS certificate: `caller.*` in policies.
    Empty on a plaintext connection or without a client certificate. The handshake has already
    verified the certificate against server.tls.client_ca."""
    found: Any = context.auth_context().get("x509_pem_cert")  # a list of PEM bytes
    if not found:
        return {}
    try:
        caller: dict[str, Any] = from_json(identity(found[0]))
        return caller
    except (AuthenticationError, ValueError):  # pragma: no cover - the TLS stack parsed it
        # Fail closed: without an identity, rules on caller.* do not hold.
        _log.warning("could not read the caller's certificate")
        return {}


def handler(service: DecisionService) -> grpc.GenericRpcHandler:
    def unary(
        method: Callable[[bytes, grpc.ServicerContext], Message],
    ) -> grpc.RpcMethodHandler[bytes, Message]:
        # No request_deserializer: the handler gets the bytes (see the module docstring).
        return grpc.unary_unary_rpc_method_handler(
            method, response_serializer=lambda message: message.SerializeToString()
        )

    return grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"Check": unary(service.check), "CheckBatch": unary(service.check_batch)}
    )
