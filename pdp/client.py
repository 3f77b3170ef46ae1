"""A small typed client for services that ask pdp for decisions, sync and asyncio.

    from pdp.client import DecisionClient

    with DecisionClient("127.0.0.1:50051") as pdp:
        result = pdp.check(token, "read", "Order", "o-1", attributes={"account": "acct-7"})
        if not result.allowed:
            ...  # result.reasons says why

The first argument is the caller's credential: a JWT as a string, or what one of api_key(),
basic(), hmac() (with sign_request()) or client_certificate() returns. A deny is a normal
result. Transport failures raise grpc.RpcError; a malformed request raises grpc.RpcError with
status INVALID_ARGUMENT. Treat both as deny.

With `tls=TlsOptions(...)` the client connects over TLS, and with a certificate and key of its
own over mutual TLS: pdp then knows the calling service as `caller.*`.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.struct_pb2 import Struct

from pdp.signing import SignedRequest, sign_request
from pdp.v1 import decision_pb2 as pb
from pdp.v1 import decision_pb2_grpc as pb_grpc

__all__ = [
    "AsyncDecisionClient",
    "CredentialsLike",
    "DecisionClient",
    "Item",
    "Reason",
    "Result",
    "RuleError",
    "SignedRequest",
    "TlsOptions",
    "api_key",
    "basic",
    "bearer",
    "client_certificate",
    "hmac",
    "sign_request",
]


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    rule: str
    message: str
    source: str


@dataclass(frozen=True, slots=True)
class RuleError:
    rule: str
    effect: str
    message: str
    source: str


@dataclass(frozen=True, slots=True)
class Result:
    allowed: bool
    reasons: tuple[Reason, ...]
    decision_id: str
    policy_revision: str
    explanations: tuple[str, ...] = ()
    """Explain mode: one line per rule that did not apply."""
    errors: tuple[RuleError, ...] = ()
    retry_after: float = 0.0
    """With limit.rate or limit.quota: seconds until a request may succeed again."""

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(reason.rule for reason in self.reasons if reason.rule)


@dataclass(frozen=True, slots=True)
class Item:
    """One question of a batch."""

    action: str
    resource_type: str
    resource_id: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


def _struct(values: Mapping[str, Any] | None) -> Struct:
    struct = Struct()
    if values:
        struct.update(values)
    return struct


def _resource(
    resource_type: str, resource_id: str, attributes: Mapping[str, Any] | None
) -> pb.Resource:
    return pb.Resource(type=resource_type, id=resource_id, attributes=_struct(attributes))


CredentialsLike = str | pb.Credentials | None
"""A JWT (str), credentials built by the functions below, or None."""


def bearer(token: str) -> pb.Credentials:
    return pb.Credentials(bearer_token=token)


def api_key(key: str) -> pb.Credentials:
    return pb.Credentials(api_key=key)


def basic(username: str, password: str) -> pb.Credentials:
    """User name and password, sent as an HTTP Basic Authorization value."""
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return pb.Credentials(basic=f"Basic {encoded}")


def client_certificate(pem: str) -> pb.Credentials:
    """An end client's certificate chain (PEM), as a service that terminated its TLS got it."""
    return pb.Credentials(client_certificate=pem)


def hmac(signed: SignedRequest) -> pb.Credentials:
    """A request signed with sign_request() (docs/hmac.md)."""
    # SignedRequest has exactly the fields of the proto message.
    return pb.Credentials(hmac=pb.HmacSignature(**dataclasses.asdict(signed)))


def _credentials(credentials: CredentialsLike) -> pb.Credentials:
    if isinstance(credentials, pb.Credentials):
        return credentials
    return bearer(credentials) if credentials else pb.Credentials()


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """Files for a TLS connection: the CA that signed the server's certificate and, for mutual
    TLS, this client's own certificate and key."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )


def check_request(
    credentials: CredentialsLike,
    action: str,
    resource_type: str,
    resource_id: str = "",
    *,
    attributes: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    explain: bool = False,
) -> pb.CheckRequest:
    return pb.CheckRequest(
        credentials=_credentials(credentials),
        action=action,
        resource=_resource(resource_type, resource_id, attributes),
        context=_struct(context),
        explain=explain,
    )


def batch_request(
    credentials: CredentialsLike,
    items: Sequence[Item],
    *,
    context: Mapping[str, Any] | None = None,
    explain: bool = False,
) -> pb.CheckBatchRequest:
    return pb.CheckBatchRequest(
        credentials=_credentials(credentials),
        context=_struct(context),
        items=[
            pb.CheckItem(
                action=item.action,
                resource=_resource(item.resource_type, item.resource_id, item.attributes),
            )
            for item in items
        ],
        explain=explain,
    )


def result(response: pb.CheckResponse) -> Result:
    return Result(
        allowed=response.decision == pb.DECISION_ALLOW,
        reasons=tuple(Reason(r.code, r.rule, r.message, r.source) for r in response.reasons),
        decision_id=response.decision_id,
        policy_revision=response.policy_revision,
        explanations=tuple(e.message for e in response.explanations),
        errors=tuple(RuleError(e.rule, e.effect, e.message, e.source) for e in response.errors),
        retry_after=response.retry_after_seconds,
    )


class DecisionClient:
    """Blocking client. Thread-safe; keep one per process and reuse it."""

    def __init__(
        self,
        target: str,
        *,
        channel: grpc.Channel | None = None,
        timeout: float = 2.0,
        tls: TlsOptions | None = None,
    ) -> None:
        if channel is None:
            channel = (
                grpc.secure_channel(target, tls.channel_credentials())
                if tls is not None
                else grpc.insecure_channel(target)
            )
        self._channel = channel
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self.timeout = timeout

    def check(
        self,
        credentials: CredentialsLike,
        action: str,
        resource_type: str,
        resource_id: str = "",
        *,
        attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> Result:
        request = check_request(
            credentials,
            action,
            resource_type,
            resource_id,
            attributes=attributes,
            context=context,
            explain=explain,
        )
        return result(self._stub.Check(request, timeout=timeout or self.timeout))

    def check_batch(
        self,
        credentials: CredentialsLike,
        items: Sequence[Item],
        *,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> list[Result]:
        request = batch_request(credentials, items, context=context, explain=explain)
        response = self._stub.CheckBatch(request, timeout=timeout or self.timeout)
        return [result(item) for item in response.results]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncDecisionClient:
    """asyncio client, on grpc.aio. Create it inside a running event loop."""

    def __init__(
        self,
        target: str,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout: float = 2.0,
        tls: TlsOptions | None = None,
    ) -> None:
        if channel is None:
            channel = (
                grpc.aio.secure_channel(target, tls.channel_credentials())
                if tls is not None
                else grpc.aio.insecure_channel(target)
            )
        self._channel = channel
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self.timeout = timeout

    async def check(
        self,
        credentials: CredentialsLike,
        action: str,
        resource_type: str,
        resource_id: str = "",
        *,
        attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> Result:
        request = check_request(
            credentials,
            action,
            resource_type,
            resource_id,
            attributes=attributes,
            context=context,
            explain=explain,
        )
        response = await self._stub.Check(request, timeout=timeout or self.timeout)
        return result(response)

    async def check_batch(
        self,
        credentials: CredentialsLike,
        items: Sequence[Item],
        *,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> list[Result]:
        request = batch_request(credentials, items, context=context, explain=explain)
        response = await self._stub.CheckBatch(request, timeout=timeout or self.timeout)
        return [result(item) for item in response.results]

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
