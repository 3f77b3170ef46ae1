"""What the service benchmark sends: a real RS256 issuer, signed tokens, serialized requests.

The shop requests (tests/data/shop/requests.jsonl) are converted to the gRPC shape: the subject's
claims go into a signed token, the action, resource and context into the request. Requests are
serialized once, beforehand, so a load generator only moves bytes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pdp.client import Item, batch_request, check_request
from pdp.decision_point import Answer, DecisionIds
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySet
from pdp.server.convert import fill_response
from pdp.v1 import decision_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
SHOP_POLICIES = ROOT / "policies" / "shop"
SHOP_REQUESTS = ROOT / "tests" / "data" / "shop" / "requests.jsonl"
SHOP_EXPECTED = ROOT / "tests" / "data" / "shop" / "expected.jsonl"

ISSUER = "https://id.bench.example"
AUDIENCE = "shop-api"
KID = "bench-rsa-1"
ALGORITHM = "RS256"
TOKEN_LIFETIME_S = 3600
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
"""Evaluation time for local decisions (the shop policies never read the clock)."""


@dataclass(frozen=True, slots=True)
class ShopRequest:
    subject: dict[str, Any]
    action: str
    resource: dict[str, Any]
    context: dict[str, Any]
    expected: str
    """"allow" or "deny", from expected.jsonl."""

    @property
    def user(self) -> str:
        return str(self.subject["sub"])

    def item(self) -> Item:
        attributes = {k: v for k, v in self.resource.items() if k not in ("type", "id")}
        return Item(self.action, self.resource["type"], self.resource.get("id", ""), attributes)

    def engine_request(
        self, subject: dict[str, Any] | None = None, context: dict[str, Any] | None = None
    ) -> Request:
        return Request.from_json(
            {
                "subject": self.subject if subject is None else subject,
                "action": self.action,
                "resource": self.resource,
                "context": self.context if context is None else context,
            }
        )


def load_shop() -> list[ShopRequest]:
    with SHOP_REQUESTS.open(encoding="utf-8") as lines:
        documents = [json.loads(line) for line in lines if line.strip()]
    with SHOP_EXPECTED.open(encoding="utf-8") as lines:
        expected = [json.loads(line)["decision"] for line in lines if line.strip()]
    return [
        ShopRequest(d["subject"], d["action"], d["resource"], d.get("context", {}), answer)
        for d, answer in zip(documents, expected, strict=True)
    ]


def most_active_users(requests: Sequence[ShopRequest], count: int) -> list[str]:
    """The `count` users with the most requests (ties: first seen first), a realistic pool of
    callers whose tokens are reused across calls."""
    return [user for user, _ in Counter(r.user for r in requests).most_common(count)]


# --- the issuer ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64_int(number: int) -> str:
    return _b64(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Issuer:
    """A real RSA-2048 key pair; tokens are signed in worker processes (about 0.7 ms each)."""

    private_pem: bytes
    public_jwk: dict[str, str]

    @classmethod
    def generate(cls) -> Issuer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = key.public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "n": _b64_int(numbers.n),
            "e": _b64_int(numbers.e),
            "kid": KID,
            "alg": ALGORITHM,
            "use": "sig",
        }
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem, jwk)

    def write_jwks(self, path: Path) -> None:
        path.write_text(json.dumps({"keys": [self.public_jwk]}), encoding="utf-8")

    def sign(
        self, executor: Executor, subjects: Sequence[dict[str, Any]], workers: int
    ) -> list[str]:
        """One token per subject, each with its own `jti` (so no two are alike), signed in
        parallel by `executor`."""
        now = int(time.time())
        claim_sets = [token_claims(subject, now) for subject in subjects]
        size = max(1, -(-len(claim_sets) // (workers * 4)))
        chunks = [claim_sets[i : i + size] for i in range(0, len(claim_sets), size)]
        signed = executor.map(sign_chunk, [self.private_pem] * len(chunks), chunks)
        return [token for chunk in signed for token in chunk]


def token_claims(subject: dict[str, Any], now: int) -> dict[str, Any]:
    """What an identity provider would put in the token: the registered claims and the
    subject's attributes (`sub` among them)."""
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_S,
        "jti": uuid.uuid4().hex,
        **subject,
    }


def sign_chunk(private_pem: bytes, claim_sets: list[dict[str, Any]]) -> list[str]:
    """Runs in a worker process."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    return [
        jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": KID})  # type: ignore[arg-type]
        for claims in claim_sets
    ]


# --- requests ------------------------------------------------------------------------------------


def check_payload(token: str, request: ShopRequest) -> bytes:
    item = request.item()
    message = check_request(
        token,
        item.action,
        item.resource_type,
        item.resource_id,
        attributes=item.attributes,
        context=request.context,
    )
    return message.SerializeToString()


@dataclass(frozen=True, slots=True)
class Batch:
    """One caller (a user of the pool) asking about `items` in one context."""

    user: str
    items: tuple[ShopRequest, ...]
    context: dict[str, Any]

    def payload(self, token: str) -> bytes:
        items = [request.item() for request in self.items]
        return batch_request(token, items, context=self.context).SerializeToString()


def plan_batches(
    requests: Sequence[ShopRequest], users: Sequence[str], size: int, count: int
) -> list[Batch]:
    """`count` batches of `size` consecutive shop requests (their actions and resources; the
    subject is the batch's caller), callers taken round-robin from `users`."""
    batches = []
    for number in range(count):
        start = number * size
        items = tuple(requests[(start + k) % len(requests)] for k in range(size))
        batches.append(Batch(users[number % len(users)], items, items[0].context))
    return batches


# --- do-nothing responses and local answers ------------------------------------------------------


def local_batch_decisions(
    policy_set: PolicySet, batch: Batch, subject: dict[str, Any]
) -> list[str]:
    """What pdp should answer for `batch` from the caller `subject`: the engine, locally."""
    return [
        authorize(policy_set, request.engine_request(subject, batch.context), NOW).outcome
        for request in batch.items
    ]


def typical_check_response(policy_set: PolicySet, requests: Sequence[ShopRequest]) -> bytes:
    """A CheckResponse as pdp sends for these requests, of their mean size: what the
    do-nothing server answers every Check with."""
    ids = DecisionIds()
    responses = [
        fill_response(
            pb.CheckResponse(), Answer(authorize(policy_set, r.engine_request(), NOW), ids.next())
        ).SerializeToString()
        for r in requests
    ]
    return mean_sized(responses, pb.CheckResponse.FromString, lambda message: message)


def typical_batch_response(
    policy_set: PolicySet, batches: Sequence[Batch], subjects: dict[str, dict[str, Any]]
) -> bytes:
    """A CheckBatchResponse as pdp sends for these batches, of their mean size: what the
    do-nothing server answers every CheckBatch with."""
    ids = DecisionIds()
    responses = []
    for batch in batches:
        response = pb.CheckBatchResponse()
        for request in batch.items:
            engine_request = request.engine_request(subjects[batch.user], batch.context)
            decision = authorize(policy_set, engine_request, NOW)
            fill_response(response.results.add(), Answer(decision, ids.next()))
        responses.append(response.SerializeToString())
    return mean_sized(responses, pb.CheckBatchResponse.FromString, lambda batch: batch.results[0])


def mean_sized(
    responses: Sequence[bytes],
    parse: Callable[[bytes], Any],
    first_answer: Callable[[Any], pb.CheckResponse],
) -> bytes:
    """The largest response no larger than the mean, its first reason's message padded until
    the whole is the mean size: answers come in a few sizes (a deny is short, an allow quotes
    its rule), and the mean is what the transport carries on average."""
    target = round(sum(map(len, responses)) / len(responses))
    message = parse(max((r for r in responses if len(r) <= target), key=len))
    reason = first_answer(message).reasons[0]
    while len(message.SerializeToString()) < target:
        reason.message += " "
    serialized: bytes = message.SerializeToString()
    return serialized
