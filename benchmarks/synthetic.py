"""Synthetic policy sets and requests for the engine benchmark, generated with a fixed seed.

A set of N rules looks like a large organisation's policy folder: one file per business domain
(split when it grows past the size budget), each with its own constants, rules that target one
resource type and one or a few of its actions, and a few set-wide forbids (`action any` and/or
`resource any`). Conditions combine 2-4 comparisons on subject, resource and context attributes.

How the set grows matters for what the benchmark shows. A set grows by *breadth*: more resource
types (services, domains), each with about `RULES_PER_TYPE` rules over `ACTIONS_PER_TYPE`
actions, so a request has a similar number of candidate rules whatever the size of the set; that
is the case the rule index is for. `dense=True` keeps the vocabulary of a small set instead, so
every extra rule becomes a candidate for some request: it shows what a candidate costs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.engine.decision import Request

RULES_PER_TYPE = 12
"""Rules per resource type: with ACTIONS_PER_TYPE actions, about 2-3 rules per (action, type)."""
ACTIONS_PER_TYPE = 5
MIN_TYPES = 1
"""One type for the smallest sets too: every size then has the same rules per type, so the
sizes differ in breadth only and the 10-rule row is a fair baseline for the 10,000-rule one."""
DENSE_TYPES = 8
"""The vocabulary of a dense set: the number of types of a ~100-rule set."""
MAX_FILE_BYTES = 400_000
"""Files are split before this size (the loader refuses files over 1 MiB)."""

DOMAINS = (
    "Billing", "Crm", "Hr", "Inventory", "Shipping", "Support", "Marketing", "Finance",
    "Legal", "Payroll", "Catalog", "Storage", "Compute", "Network", "Identity", "Audit",
    "Analytics", "Docs", "Wiki", "Chat", "Calendar", "Mail", "Build", "Deploy",
    "Registry", "Secrets", "Monitoring", "Search", "Forms", "Sales",
)  # fmt: skip
NOUNS = (
    "Invoice", "Account", "Order", "Document", "Report", "Ticket", "Project", "Folder",
    "Contract", "Payment", "Customer", "Employee", "Record", "Dashboard", "Bucket", "Secret",
    "Cluster", "Repository", "Pipeline", "Release", "Policy", "Device", "Message", "Campaign",
    "Asset", "Budget", "Shipment", "Product", "Review", "Template", "Workspace", "Job",
    "Schedule", "Note", "Comment",
)  # fmt: skip
ACTIONS = (
    "read", "list", "create", "update", "delete", "share", "export", "approve", "archive",
    "comment", "publish", "download", "upload", "assign", "close", "reopen", "refund",
    "cancel", "transfer", "restore", "purge", "audit", '"bulk-export"', '"orders:approve"',
)  # fmt: skip
ROLES = ("viewer", "editor", "admin", "auditor", "support", "owner", "contractor", "manager")
PRIVILEGED_EXTRA = ("auditor", "support", "manager")
"""Each file's PRIVILEGED_ROLES: admin, owner and one of these."""
DEPARTMENTS = ("sales", "engineering", "finance", "legal", "hr", "support", "ops", "marketing")
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "SE", "JP", "AU", "BR", "IN", "ES", "IT", "MX")
GROUPS = ("staff", "oncall", "finance-approvers", "legal-team", "beta", "vip", "security")
TAGS = ("public", "pii", "draft", "legal-hold", "export-controlled", "customer-facing")
STATUSES = ("draft", "active", "archived", "locked")
CLASSIFICATIONS = ("public", "internal", "confidential", "secret")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-northeast")
CHANNELS = ("web", "api", "mobile")
TENANTS = tuple(f"t-{n:02d}" for n in range(1, 9))
EMAIL_DOMAINS = ("@example.com", "@example.com", "@partner.org", "@contractor.io")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The resource types of a set, the actions each type has, and the domain (file) it is in."""

    actions_by_type: dict[str, tuple[str, ...]]
    domain_by_type: dict[str, str]

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.actions_by_type)

    @property
    def action_count(self) -> int:
        return len({a for actions in self.actions_by_type.values() for a in actions})


@dataclass(slots=True)
class GeneratedSet:
    rule_count: int
    vocabulary: Vocabulary
    files: dict[str, str] = field(default_factory=dict)
    """File name (relative to the set's folder) -> policy text."""

    def write(self, folder: Path) -> None:
        for name, text in self.files.items():
            (folder / name).write_text(text, encoding="utf-8")

    @property
    def total_bytes(self) -> int:
        return sum(len(text.encode()) for text in self.files.values())


def type_count(rule_count: int, dense: bool) -> int:
    if dense:
        return DENSE_TYPES
    return max(MIN_TYPES, round(rule_count / RULES_PER_TYPE))


def vocabulary(rule_count: int, dense: bool, rng: random.Random) -> Vocabulary:
    actions_by_type: dict[str, tuple[str, ...]] = {}
    domain_by_type: dict[str, str] = {}
    for number in range(type_count(rule_count, dense)):
        domain = DOMAINS[number % len(DOMAINS)]
        noun = NOUNS[(number // len(DOMAINS)) % len(NOUNS)]
        generation = number // (len(DOMAINS) * len(NOUNS))
        name = f"{domain}{noun}" + (f"V{generation + 1}" if generation else "")
        actions_by_type[name] = tuple(rng.sample(ACTIONS, ACTIONS_PER_TYPE))
        domain_by_type[name] = domain
    return Vocabulary(actions_by_type, domain_by_type)


# --- conditions --------------------------------------------------------------------------------

# Each template writes one comparison. `forbid` is True in forbids, which must tolerate absent
# optional attributes (a forbid that reads an absent attribute denies: fail closed).
Template = Callable[[random.Random, bool], str]

_TEMPLATES: tuple[Template, ...] = (
    lambda rng, forbid: f'subject.role == "{rng.choice(ROLES)}"',
    lambda rng, forbid: "subject.role in PRIVILEGED_ROLES",
    lambda rng, forbid: f"subject.role in {_list(rng.sample(ROLES, 3))}",
    lambda rng, forbid: "subject.department == resource.department",
    lambda rng, forbid: "subject.tenant == resource.tenant",
    lambda rng, forbid: "resource.owner == subject.id",
    lambda rng, forbid: "subject.clearance >= resource.sensitivity",
    lambda rng, forbid: f"resource.sensitivity <= {rng.randint(1, 4)}",
    lambda rng, forbid: f"resource.amount {rng.choice(['<=', '>'])} {rng.choice([500, 2_500])}",
    lambda rng, forbid: "resource.amount <= MAX_AMOUNT",
    lambda rng, forbid: "context.hour >= OFFICE_START and context.hour < OFFICE_END",
    lambda rng, forbid: f"context.hour {rng.choice(['<', '>='])} {rng.randint(6, 20)}",
    lambda rng, forbid: "context.mfa ?? false == false" if forbid else "context.mfa == true",
    lambda rng, forbid: "subject.country in ALLOWED_COUNTRIES",
    lambda rng, forbid: f'resource.status {rng.choice(["==", "!="])} "{rng.choice(STATUSES)}"',
    lambda rng, forbid: f"resource.classification in {_list(rng.sample(CLASSIFICATIONS, 2))}",
    lambda rng, forbid: f'resource.tags contains "{rng.choice(TAGS)}"',
    lambda rng, forbid: f'"{rng.choice(GROUPS)}" in subject.groups',
    lambda rng, forbid: f'subject.email ends with "{rng.choice(EMAIL_DOMAINS)}"',
    lambda rng, forbid: 'context.ip in cidr("10.0.0.0/8")',
    lambda rng, forbid: f"subject.level > {rng.randint(1, 5)}",
    lambda rng, forbid: f'context.channel != "{rng.choice(CHANNELS)}"',
    lambda rng, forbid: f"context.risk < {rng.choice([30, 60, 90])}",
    lambda rng, forbid: "subject.age >= 18",
    lambda rng, forbid: f"resource.region in {_list(rng.sample(REGIONS, 3))}",
    lambda rng, forbid: 'weekday(now()) in ["saturday", "sunday"]',
)


def _list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


_ROLE_TEMPLATES = frozenset(_TEMPLATES[:3])
"""Templates that test `subject.role`: at most one per condition, or `and` could join two that
contradict each other (`== "editor"` and `in ["viewer", ...]`), which pdp rejects at load."""


def condition(rng: random.Random, forbid: bool) -> str:
    """2-4 different comparisons joined by `and`; sometimes two of them form an `or`."""
    while True:
        chosen = rng.sample(_TEMPLATES, rng.randint(2, 4))
        if sum(template in _ROLE_TEMPLATES for template in chosen) <= 1:
            break
    parts = [template(rng, forbid) for template in chosen]
    if len(parts) >= 3 and rng.random() < 0.2:
        parts[:2] = [f"({parts[0]} or {parts[1]})"]
    return "\n             and ".join(parts)


def _reason(rng: random.Random, rule_id: str) -> str:
    choice = rng.random()
    if choice < 0.3:
        return f'\n    reason   "{{subject.id}} ({{subject.role}}) on {{resource.id}} by {rule_id}"'
    if choice < 0.6:
        return f'\n    reason   "allowed by the {rule_id} policy"'
    return ""


def _target(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"


def _rule(rng: random.Random, number: int, vocab: Vocabulary, resource_type: str) -> str:
    forbid = rng.random() < 0.2
    actions = list(vocab.actions_by_type[resource_type])
    chosen = rng.sample(actions, rng.choice([1, 1, 1, 2, 3]))
    types = [resource_type]
    if rng.random() < 0.1:
        types.append(rng.choice(vocab.types))
    types = list(dict.fromkeys(types))
    first_action = chosen[0].strip('"').replace(":", "-")
    rule_id = f"{resource_type.lower()}-{first_action}-{number:05d}"
    return (
        f"{'forbid' if forbid else 'permit'} {rule_id} {{\n"
        f"    action   {_target(chosen)}\n"
        f"    resource {_target(types)}\n"
        f"    when     {condition(rng, forbid)}"
        f"{_reason(rng, rule_id)}\n}}\n"
    )


_GLOBAL_FORBIDS = (
    # Two set-wide forbids appear in every set, even the smallest.
    """forbid global-suspended {
    action   any
    resource any
    when     subject.status ?? "active" == "suspended"
    reason   "subject {subject.id} is suspended"
}
""",
    """forbid global-high-risk {
    action   any
    resource any
    when     context.risk ?? 0 > 95 and not (context.mfa ?? false)
}
""",
    # From 100 rules: one `resource any` and one `action any` forbid.
    """forbid destructive-needs-mfa {
    action   [delete, purge]
    resource any
    when     context.mfa ?? false == false
    reason   "{action} needs multi-factor authentication"
}
""",
    """forbid first-type-cross-tenant {
    action   any
    resource FIRST_TYPE
    when     subject.tenant ?? "" != resource.tenant ?? ""
}
""",
)


def _constants(rng: random.Random) -> str:
    return (
        f"const ALLOWED_COUNTRIES = {_list(rng.sample(COUNTRIES, 9))}\n"
        f'const PRIVILEGED_ROLES = ["admin", "owner", "{rng.choice(PRIVILEGED_EXTRA)}"]\n'
        f"const MAX_AMOUNT = {rng.choice(['1_000', '5_000', '10_000'])}\n"
        f"const OFFICE_START = {rng.randint(7, 9)}\n"
        f"const OFFICE_END = {rng.randint(17, 19)}\n"
    )


def generate_set(rule_count: int, seed: int, dense: bool = False) -> GeneratedSet:
    """`rule_count` rules in total, set-wide forbids included."""
    rng = random.Random(seed)
    vocab = vocabulary(rule_count, dense, rng)
    generated = GeneratedSet(rule_count, vocab)
    global_count = 2 if rule_count < 100 else 4
    first_type = vocab.types[0]
    generated.files["000-global.policy"] = "# Set-wide rules.\n\n" + "\n".join(
        text.replace("FIRST_TYPE", first_type) for text in _GLOBAL_FORBIDS[:global_count]
    )
    # Spread the rules evenly over the types, then write one file per domain.
    types = vocab.types
    rules_by_domain: dict[str, list[str]] = {}
    for number in range(rule_count - global_count):
        resource_type = types[number % len(types)]
        domain = vocab.domain_by_type[resource_type]
        rules_by_domain.setdefault(domain, []).append(_rule(rng, number, vocab, resource_type))
    for domain, rules in rules_by_domain.items():
        part, text = 1, ""
        for rule in rules:
            if not text:
                text = f"# {domain} policies.\n\n" + _constants(rng)
            text += "\n" + rule
            if len(text) > MAX_FILE_BYTES:
                generated.files[f"{domain.lower()}-{part:02d}.policy"] = text
                part, text = part + 1, ""
        if text:
            generated.files[f"{domain.lower()}-{part:02d}.policy"] = text
    return generated


# --- requests ----------------------------------------------------------------------------------


def request_document(rng: random.Random, vocab: Vocabulary) -> dict[str, Any]:
    """A plausible request: mostly an action the type has, attributes that often line up with
    the subject's (same tenant, same department, own resource) so that some rules allow."""
    resource_type = rng.choice(vocab.types)
    actions = vocab.actions_by_type[resource_type]
    action = rng.choice(actions) if rng.random() < 0.9 else rng.choice(ACTIONS)
    subject_id = f"u-{rng.randint(1, 500):04d}"
    tenant = rng.choice(TENANTS)
    department = rng.choice(DEPARTMENTS)
    subject: dict[str, Any] = {
        "id": subject_id,
        "role": rng.choice(ROLES),
        "department": department,
        "tenant": tenant,
        "clearance": rng.randint(0, 5),
        "country": rng.choice(COUNTRIES),
        "age": rng.randint(16, 70),
        "level": rng.randint(1, 7),
        "email": subject_id + rng.choice(EMAIL_DOMAINS),
        "groups": rng.sample(GROUPS, rng.randint(0, 3)),
    }
    if rng.random() < 0.9:  # optional claim
        subject["status"] = "suspended" if rng.random() < 0.05 else "active"
    resource: dict[str, Any] = {
        "type": resource_type,
        "id": f"{resource_type.lower()}-{rng.randint(1, 100_000)}",
        "owner": subject_id if rng.random() < 0.4 else f"u-{rng.randint(1, 500):04d}",
        "department": department if rng.random() < 0.5 else rng.choice(DEPARTMENTS),
        "tenant": tenant if rng.random() < 0.85 else rng.choice(TENANTS),
        "sensitivity": rng.randint(0, 5),
        "status": rng.choice(STATUSES),
        "amount": rng.randint(0, 20_000),
        "classification": rng.choice(CLASSIFICATIONS),
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "region": rng.choice(REGIONS),
    }
    context: dict[str, Any] = {
        "hour": rng.randint(0, 23),
        "ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if rng.random() < 0.6
        else f"203.0.113.{rng.randint(1, 254)}",
        "risk": rng.randint(0, 100),
        "channel": rng.choice(CHANNELS),
    }
    if rng.random() < 0.9:  # optional: not every client reports it
        context["mfa"] = rng.random() < 0.7
    return {
        "subject": subject,
        "action": action.strip('"'),
        "resource": resource,
        "context": context,
    }


def generate_requests(vocab: Vocabulary, count: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    # Through JSON text, as a caller's requests arrive.
    return [
        Request.from_json(json.loads(json.dumps(request_document(rng, vocab))))
        for _ in range(count)
    ]
