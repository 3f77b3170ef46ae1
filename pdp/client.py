"""A small typed client for services that ask pdp for decisions, sync and asyncio.

    from pdp.client import DecisionClient

    with DecisionClient("127.0.0.1:50051") as pdp:
        result = pdp.check(token, "read", "Order", "o-1", attributes={"account": "acct-7"})
        if not result.allowed:
            ...  # result.reasons says why

A deny is a normal result. Transport failures raise grpc.RpcError; a malformed request raises
grpc.RpcError with status INVALID_ARGUMENT. Treat both as deny.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.struct_pb2 import Struct

from pdp.v1 import decision_pb2 as pb
from pdp.v1 import decision_pb2_grpc as pb_grpc


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


def _credentials(token: str | None) -> pb.Credentials:
    return pb.Credentials(bearer_token=token) if token else pb.Credentials()


def check_request(
    token: str | None,
    action: str,
    resource_type: str,
    resource_id: str = "",
    *,
    attributes: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    explain: bool = False,
) -> pb.CheckRequest:
    return pb.CheckRequest(
        credentials=_credentials(token),
        action=action,
        resource=_resource(resource_type, resource_id, attributes),
        context=_struct(context),
        explain=explain,
    )


def batch_request(
    token: str | None,
    items: Sequence[Item],
    *,
    context: Mapping[str, Any] | None = None,
    explain: bool = False,
) -> pb.CheckBatchRequest:
    return pb.CheckBatchRequest(
        credentials=_credentials(token),
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
    )


class DecisionClient:
    """Blocking client. Thread-safe; keep one per process and reuse it."""

    def __init__(
        self,
        target: str,
        *,
        channel: grpc.Channel | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._channel = channel or grpc.insecure_channel(target)
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self.timeout = timeout

    def check(
        self,
        token: str | None,
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
            token,
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
        token: str | None,
        items: Sequence[Item],
        *,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> list[Result]:
        request = batch_request(token, items, context=context, explain=explain)
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
    ) -> None:
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self.timeout = timeout

    async def check(
        self,
        token: str | None,
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
            token,
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
        token: str | None,
        items: Sequence[Item],
        *,
        context: Mapping[str, Any] | None = None,
        explain: bool = False,
        timeout: float | None = None,
    ) -> list[Result]:
        request = batch_request(token, items, context=context, explain=explain)
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
