"""The media example policies (policies/media): a video streaming service.

Every media rule gets at least one request it lets through and one it stops, each pair differing
in one attribute (17 vs 18 on the birthday, inside vs outside a CIDR, 06:59 vs 07:00 local
time, owner vs non-owner). The cases run against policies/media alone and against the whole
policies/ folder, which is what `make run` serves: there the shop's `resource any` rules
(forbid-blocked, delete-admin) also see media requests, and shop decisions must not change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Request
from pdp.engine.policy_set import PolicySet
from pdp.language.literals import parse_datetime
from pdp.policy_store import load_policy_set
from tests.helpers import NOW

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
MEDIA = POLICIES / "media"
SHOP = POLICIES / "shop"
EXAMPLES = ROOT / "examples" / "requests"
SHOP_DATA = Path(__file__).resolve().parent / "data" / "shop"

MEDIA_RESOURCE_TYPES = {"Video", "Profile", "Playlist", "StaffTool"}
MEDIA_RULES = {
    "watch-via-proxy",
    "watch-before-release",
    "watch-kids-bedtime",
    "watch-kids-rating",
    "watch-licensed",
    "profile-select-household",
    "profile-manage-holder",
    "playlist-owner",
    "playlist-read-household",
    "staff-tool-office",
    "maintenance-window",
}

HOME_IP = "192.0.2.10"
OFFICE_IP = "198.51.100.20"
ABSENT = object()
"""As a claim's value in the builders below: leave the claim out."""


@cache
def load(folder: Path) -> PolicySet:
    return load_policy_set(folder)


def at(text: str) -> datetime:
    return parse_datetime(text)


def _with(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **changes}
    return {key: value for key, value in merged.items() if value is not ABSENT}


def viewer(**changes: Any) -> dict[str, Any]:
    """A household member on a standard profile in Stockholm (UTC+1 in November)."""
    claims = {
        "sub": "u-1001",
        "account": "acct-100",
        "account_role": "member",
        "birthdate": "1990-05-17",
        "timezone": "Europe/Stockholm",
        "profile_kind": "standard",
    }
    return _with(claims, changes)


def kid(**changes: Any) -> dict[str, Any]:
    return viewer(sub="u-1003", birthdate="2017-03-09", profile_kind="kids", **changes)


def holder(**changes: Any) -> dict[str, Any]:
    return viewer(sub="u-1000", account_role="holder", **changes)


def staff(**changes: Any) -> dict[str, Any]:
    claims = {
        "sub": "emp-0042",
        "account": "acct-staff",
        "email": "ada.lind@staff.streamco.example",
        "teams": ["support", "billing"],
    }
    return _with(claims, changes)


def video(**changes: Any) -> dict[str, Any]:
    return _with({"type": "Video", "id": "v-100", "age_rating": 12}, changes)


def profile(**changes: Any) -> dict[str, Any]:
    return _with({"type": "Profile", "id": "pr-100-kids", "account": "acct-100"}, changes)


def playlist(**changes: Any) -> dict[str, Any]:
    base = {"type": "Playlist", "id": "pl-7", "owner": "u-1001", "account": "acct-100"}
    return _with(base, changes)


def tool(**changes: Any) -> dict[str, Any]:
    return _with({"type": "StaffTool", "id": "tool-account-lookup", "team": "support"}, changes)


def where(ip: Any = HOME_IP, country: Any = "SE") -> dict[str, Any]:
    return _with({}, {"ip": ip, "country": country})


def decide(
    policies: PolicySet,
    subject: dict[str, Any],
    action: str,
    resource: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    now: datetime = NOW,
    explain: bool = False,
) -> Decision:
    request = Request.from_json(
        {
            "subject": subject,
            "action": action,
            "resource": resource,
            "context": where() if context is None else context,
        }
    )
    return authorize(policies, request, now, explain=explain)


# --- one allow and one deny (at least) for every media rule ------------------------------------


@dataclass(frozen=True)
class Case:
    rule: str
    """The media rule this case exercises."""
    name: str
    subject: dict[str, Any]
    action: str
    resource: dict[str, Any]
    outcome: str
    rules: tuple[str, ...]
    """The deciding rule ids, in the order the decision lists them."""
    context: dict[str, Any] = field(default_factory=where)
    now: datetime = NOW
    codes: tuple[str, ...] | None = None
    """Reason codes, when the case is about how the decision was reached."""
    errors: tuple[str, ...] = ()
    """Ids of rules whose condition could not be evaluated."""


SUNDAY = "2026-11-22"  # NOW (2026-11-23) is a Monday

CASES = [
    # watch-licensed: age from the birthdate, licensing territory from the video or the catalogue.
    Case("watch-licensed", "18 on the day of the 18th birthday",
         viewer(birthdate="2008-11-23"), "watch", video(age_rating=18),
         "allow", ("watch-licensed",)),
    Case("watch-licensed", "17 on the day before the 18th birthday",
         viewer(birthdate="2008-11-24"), "watch", video(age_rating=18),
         "deny", (), codes=("default.deny",)),
    Case("watch-licensed", "catalogue-wide territory",
         viewer(), "watch", video(), "allow", ("watch-licensed",), context=where(country="IE")),
    Case("watch-licensed", "outside the catalogue territories",
         viewer(), "watch", video(), "deny", (), context=where(country="US")),
    Case("watch-licensed", "the video's own licence list",
         viewer(), "watch", video(licensed_countries=["US", "CA"]),
         "allow", ("watch-licensed",), context=where(country="US")),
    Case("watch-licensed", "the video's own list replaces the catalogue's",
         viewer(), "watch", video(licensed_countries=["US", "CA"]),
         "deny", (), context=where(country="SE")),
    Case("watch-licensed", "no birthdate claim",
         viewer(birthdate=ABSENT), "watch", video(),
         "deny", (), codes=("default.deny",)),
    # watch-via-proxy: the proxy/VPN ranges in data/media/proxies.json.
    Case("watch-via-proxy", "last address below a proxy range",
         viewer(), "watch", video(), "allow", ("watch-licensed",),
         context=where(ip="192.0.2.127")),
    Case("watch-via-proxy", "first address of a proxy range",
         viewer(), "watch", video(), "deny", ("watch-via-proxy",), codes=("rule.forbid",),
         context=where(ip="192.0.2.128")),
    Case("watch-via-proxy", "IPv6 outside the proxy ranges",
         viewer(), "watch", video(), "allow", ("watch-licensed",),
         context=where(ip="2001:db8:beef::1")),
    Case("watch-via-proxy", "IPv6 proxy",
         viewer(), "watch", video(), "deny", ("watch-via-proxy",),
         context=where(ip="2001:db8:dead::1")),
    Case("watch-via-proxy", "no client address: denied, it cannot be checked",
         viewer(), "watch", video(), "deny", ("watch-via-proxy",),
         codes=("rule.forbid",), context=where(ip=ABSENT)),
    # watch-before-release: only videos with an `available_from`.
    Case("watch-before-release", "at the premiere",
         viewer(), "watch", video(available_from="2026-11-23T12:00:00Z"),
         "allow", ("watch-licensed",)),
    Case("watch-before-release", "one second before the premiere",
         viewer(), "watch", video(available_from="2026-11-23T12:00:01Z"),
         "deny", ("watch-before-release",), codes=("rule.forbid",)),
    Case("watch-before-release", "premiere given with an offset, still ahead",
         viewer(), "watch", video(available_from="2026-11-23T13:30:00+01:00"),
         "deny", ("watch-before-release",)),
    # watch-kids-bedtime: 07:00 to 20:00 in the viewer's time zone (Stockholm is UTC+1).
    Case("watch-kids-bedtime", "kids at 06:59 in Stockholm",
         kid(), "watch", video(age_rating=0), "deny", ("watch-kids-bedtime",),
         now=at("2026-11-23T05:59:00Z")),
    Case("watch-kids-bedtime", "kids at 07:00 in Stockholm",
         kid(), "watch", video(age_rating=0), "allow", ("watch-licensed",),
         now=at("2026-11-23T06:00:00Z")),
    Case("watch-kids-bedtime", "kids at 19:59 in Stockholm",
         kid(), "watch", video(age_rating=0), "allow", ("watch-licensed",),
         now=at("2026-11-23T18:59:00Z")),
    Case("watch-kids-bedtime", "kids at 20:00 in Stockholm",
         kid(), "watch", video(age_rating=0), "deny", ("watch-kids-bedtime",),
         now=at("2026-11-23T19:00:00Z")),
    Case("watch-kids-bedtime", "kids without a time zone, 06:59 UTC",
         kid(timezone=ABSENT), "watch", video(age_rating=0), "deny", ("watch-kids-bedtime",),
         now=at("2026-11-23T06:59:00Z")),
    Case("watch-kids-bedtime", "kids without a time zone, 07:00 UTC",
         kid(timezone=ABSENT), "watch", video(age_rating=0), "allow", ("watch-licensed",),
         now=at("2026-11-23T07:00:00Z")),
    Case("watch-kids-bedtime", "kids at noon UTC in New York (07:00 there)",
         kid(timezone="America/New_York"), "watch", video(age_rating=0, licensed_countries=["US"]),
         "allow", ("watch-licensed",), context=where(country="US")),
    Case("watch-kids-bedtime", "kids at noon UTC in Tokyo (21:00 there)",
         kid(timezone="Asia/Tokyo"), "watch", video(age_rating=0, licensed_countries=["JP"]),
         "deny", ("watch-kids-bedtime",), context=where(country="JP")),
    Case("watch-kids-bedtime", "a standard profile at 06:59 in Stockholm",
         viewer(), "watch", video(), "allow", ("watch-licensed",),
         now=at("2026-11-23T05:59:00Z")),
    Case("watch-kids-bedtime", "kids with an unknown time zone: fail closed",
         kid(timezone="Mars/Olympus_Mons"), "watch", video(age_rating=0),
         "deny", ("watch-kids-bedtime",), codes=("error.evaluation",),
         errors=("watch-kids-bedtime",)),
    # watch-kids-rating: kids' profiles see videos rated 7 or lower.
    Case("watch-kids-rating", "kids, a 7-rated video",
         kid(), "watch", video(age_rating=7), "allow", ("watch-licensed",)),
    Case("watch-kids-rating", "kids, a 12-rated video",
         kid(), "watch", video(age_rating=12), "deny", ("watch-kids-rating",)),
    Case("watch-kids-rating", "a standard profile, a 12-rated video",
         viewer(), "watch", video(age_rating=12), "allow", ("watch-licensed",)),
    Case("watch-kids-rating", "kids, an unrated video: denied",
         kid(), "watch", video(age_rating=ABSENT), "deny", ("watch-kids-rating",),
         codes=("rule.forbid",)),
    # profile-select-household: any member of the account.
    Case("profile-select-household", "a profile of the member's account",
         viewer(), "select", profile(), "allow", ("profile-select-household",)),
    Case("profile-select-household", "a profile of another account",
         viewer(), "select", profile(account="acct-999"), "deny", ()),
    # profile-manage-holder: only the account holder edits profiles.
    Case("profile-manage-holder", "the holder edits a profile",
         holder(), "edit", profile(), "allow", ("profile-manage-holder",)),
    Case("profile-manage-holder", "a member edits a profile",
         viewer(), "edit", profile(), "deny", ()),
    Case("profile-manage-holder", "the holder of another account",
         holder(account="acct-999"), "edit", profile(), "deny", ()),
    # playlist-owner: the owner reads, edits and deletes.
    Case("playlist-owner", "the owner edits",
         viewer(), "edit", playlist(), "allow", ("playlist-owner",)),
    Case("playlist-owner", "another household member edits a shared playlist",
         holder(), "edit", playlist(visibility="household"), "deny", ()),
    Case("playlist-owner", "the owner reads their shared playlist",
         viewer(), "read", playlist(visibility="household"),
         "allow", ("playlist-owner", "playlist-read-household")),
    # playlist-read-household: shared playlists, same account.
    Case("playlist-read-household", "a member reads a shared playlist",
         holder(), "read", playlist(visibility="household"),
         "allow", ("playlist-read-household",)),
    Case("playlist-read-household", "a member reads a private playlist (the default)",
         holder(), "read", playlist(), "deny", ()),
    Case("playlist-read-household", "another account reads a shared playlist",
         holder(account="acct-999"), "read", playlist(visibility="household"), "deny", ()),
    # staff-tool-office: staff email, own team's tool, office network.
    Case("staff-tool-office", "from the office (IPv4)",
         staff(), "use", tool(), "allow", ("staff-tool-office",), context=where(ip=OFFICE_IP)),
    Case("staff-tool-office", "from home",
         staff(), "use", tool(), "deny", (), context=where(ip=HOME_IP)),
    Case("staff-tool-office", "from the office (IPv6)",
         staff(), "use", tool(), "allow", ("staff-tool-office",),
         context=where(ip="2001:db8:100::5")),
    Case("staff-tool-office", "an email in capitals",
         staff(email="Ada.Lind@Staff.StreamCo.example"), "use", tool(),
         "allow", ("staff-tool-office",), context=where(ip=OFFICE_IP)),
    Case("staff-tool-office", "a look-alike email domain",
         staff(email="ada.lind@staff.streamco.example.evil.test"), "use", tool(),
         "deny", (), context=where(ip=OFFICE_IP)),
    Case("staff-tool-office", "a customer email",
         staff(email="ada.lind@streamco.example"), "use", tool(),
         "deny", (), context=where(ip=OFFICE_IP)),
    Case("staff-tool-office", "another team's tool",
         staff(), "use", tool(team="catalogue"), "deny", (), context=where(ip=OFFICE_IP)),
    # maintenance-window: Sundays 02:00-03:59 UTC, writes only.
    Case("maintenance-window", "Sunday 01:59 UTC",
         staff(), "use", tool(), "allow", ("staff-tool-office",),
         context=where(ip=OFFICE_IP), now=at(f"{SUNDAY}T01:59:00Z")),
    Case("maintenance-window", "Sunday 02:00 UTC",
         staff(), "use", tool(), "deny", ("maintenance-window",), codes=("rule.forbid",),
         context=where(ip=OFFICE_IP), now=at(f"{SUNDAY}T02:00:00Z")),
    Case("maintenance-window", "Sunday 03:59 UTC",
         staff(), "use", tool(), "deny", ("maintenance-window",),
         context=where(ip=OFFICE_IP), now=at(f"{SUNDAY}T03:59:00Z")),
    Case("maintenance-window", "Sunday 04:00 UTC",
         staff(), "use", tool(), "allow", ("staff-tool-office",),
         context=where(ip=OFFICE_IP), now=at(f"{SUNDAY}T04:00:00Z")),
    Case("maintenance-window", "Monday 02:00 UTC",
         staff(), "use", tool(), "allow", ("staff-tool-office",),
         context=where(ip=OFFICE_IP), now=at("2026-11-23T02:00:00Z")),
    Case("maintenance-window", "the owner edits a playlist during maintenance",
         viewer(), "edit", playlist(), "deny", ("maintenance-window",),
         now=at(f"{SUNDAY}T03:00:00Z")),
    Case("maintenance-window", "the owner reads a playlist during maintenance",
         viewer(), "read", playlist(), "allow", ("playlist-owner",),
         now=at(f"{SUNDAY}T03:00:00Z")),
    Case("maintenance-window", "the holder edits a profile during maintenance",
         holder(), "edit", profile(), "deny", ("maintenance-window",),
         now=at(f"{SUNDAY}T02:30:00Z")),
    Case("maintenance-window", "a member selects a profile during maintenance",
         viewer(), "select", profile(), "allow", ("profile-select-household",),
         now=at(f"{SUNDAY}T02:30:00Z")),
]  # fmt: skip


@pytest.fixture(params=[POLICIES, MEDIA], ids=["whole-folder", "media-alone"])
def policies(request: pytest.FixtureRequest) -> PolicySet:
    folder: Path = request.param
    return load(folder)


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.rule}: {c.name}") for c in CASES])
def test_media_case(policies: PolicySet, case: Case) -> None:
    decision = decide(
        policies, case.subject, case.action, case.resource, case.context, now=case.now
    )
    assert decision.outcome == case.outcome
    assert decision.rules == case.rules
    if case.codes is not None:
        assert tuple(reason.code for reason in decision.reasons) == case.codes
    assert tuple(error.rule for error in decision.errors) == case.errors


def test_every_media_rule_has_an_allowed_and_a_denied_case() -> None:
    for rule_id in MEDIA_RULES:
        outcomes = {case.outcome for case in CASES if case.rule == rule_id}
        assert outcomes == {"allow", "deny"}, rule_id
    assert {case.rule for case in CASES} == MEDIA_RULES


# --- the policy set itself -------------------------------------------------------------------


@pytest.mark.parametrize("folder", [POLICIES, MEDIA], ids=["whole-folder", "media-alone"])
def test_loads_without_warnings(folder: Path) -> None:
    assert load(folder).warnings == ()


def test_media_rules_are_the_expected_ones() -> None:
    assert {rule.id for rule in load(MEDIA).rules} == MEDIA_RULES
    whole_ids = {rule.id for rule in load(POLICIES).rules}
    shop_ids = {rule.id for rule in load(SHOP).rules}
    platform_ids = {rule.id for rule in load(POLICIES / "platform").rules}
    assert whole_ids == MEDIA_RULES | shop_ids | platform_ids
    assert not MEDIA_RULES & shop_ids
    assert not MEDIA_RULES & platform_ids


def test_media_rules_only_target_media_resources() -> None:
    # The folder is served together with the shop: a media rule on `resource any` (or on a shop
    # type) would change shop decisions.
    for rule in load(MEDIA).rules:
        names = rule.rule.resources.names
        assert names is not None, f"{rule.id} targets any resource"
        assert set(names) <= MEDIA_RESOURCE_TYPES, rule.id
        assert re.fullmatch(r"[a-z]+(?:-[a-z]+)*", rule.id), rule.id


def test_reference_data_is_loaded_under_data_media() -> None:
    for folder in (POLICIES, MEDIA):
        media_data = load(folder).data["media"]
        assert "SE" in media_data["catalogue"]["default_countries"]
        assert "US" not in media_data["catalogue"]["default_countries"]
        assert "203.0.113.0/24" in media_data["proxies"]["ranges"]


# --- served together with the shop ----------------------------------------------------------


def test_shop_forbid_blocked_applies_to_media() -> None:
    blocked = viewer(account_status="blocked")
    whole = decide(load(POLICIES), blocked, "watch", video())
    assert (whole.outcome, whole.rules) == ("deny", ("forbid-blocked",))
    alone = decide(load(MEDIA), blocked, "watch", video())
    assert (alone.outcome, alone.rules) == ("allow", ("watch-licensed",))


def test_shop_delete_admin_applies_to_media_but_not_during_maintenance() -> None:
    admin = {"sub": "u-9", "account": "acct-ops", "role": "admin"}
    monday = decide(load(POLICIES), admin, "delete", profile())
    assert (monday.outcome, monday.rules) == ("allow", ("delete-admin",))
    assert decide(load(MEDIA), admin, "delete", profile()).outcome == "deny"
    sunday = decide(load(POLICIES), admin, "delete", profile(), now=at(f"{SUNDAY}T02:30:00Z"))
    assert (sunday.outcome, sunday.rules) == ("deny", ("maintenance-window",))


def test_owner_deletes_playlist_while_shop_delete_admin_does_not_apply() -> None:
    # delete-admin tests for `subject.role`, which media viewers do not have: it does not match
    # (and, guarded, reports no error), and the owner's permit decides.
    whole = decide(load(POLICIES), viewer(), "delete", playlist())
    assert (whole.outcome, whole.rules, whole.errors) == ("allow", ("playlist-owner",), ())
    alone = decide(load(MEDIA), viewer(), "delete", playlist())
    assert (alone.outcome, alone.rules, alone.errors) == ("allow", ("playlist-owner",), ())


def test_shop_decisions_do_not_change() -> None:
    # Every request of the shop scenario: the whole folder decides exactly as the shop alone
    # (explanations included), and both agree with the independently computed answers.
    whole, shop = load(POLICIES), load(SHOP)
    requests = (SHOP_DATA / "requests.jsonl").read_text("utf-8").splitlines()
    expected = (SHOP_DATA / "expected.jsonl").read_text("utf-8").splitlines()
    assert len(requests) == len(expected) == 2000
    for line, answer in zip(requests, expected, strict=True):
        request = Request.from_json(json.loads(line))
        from_whole = authorize(whole, request, NOW, explain=True).to_dict()
        from_shop = authorize(shop, request, NOW, explain=True).to_dict()
        del from_whole["policy_revision"], from_shop["policy_revision"]
        assert from_whole == from_shop, line
        assert {"decision": from_whole["decision"], "rules": from_whole["rules"]} == json.loads(
            answer
        )


# --- explain mode ----------------------------------------------------------------------------


def explanation(decision: Decision, rule_id: str) -> str:
    found = [e.message for e in decision.explanations if e.rule == rule_id]
    assert len(found) == 1, decision.explanations
    return found[0]


def test_explain_seventeen_year_old() -> None:
    seventeen = viewer(birthdate="2008-11-24")
    decision = decide(load(POLICIES), seventeen, "watch", video(age_rating=18), explain=True)
    assert explanation(decision, "watch-licensed") == (
        "watch-licensed: years_since(subject.birthdate) >= resource.age_rating was false "
        "(years_since(subject.birthdate) = 17, resource.age_rating = 18)"
    )


def test_explain_missing_birthdate() -> None:
    decision = decide(load(MEDIA), viewer(birthdate=ABSENT), "watch", video(), explain=True)
    assert explanation(decision, "watch-licensed") == (
        "watch-licensed: subject has birthdate was false"
    )


def test_explain_staff_tool_outside_the_office() -> None:
    decision = decide(load(POLICIES), staff(), "use", tool(), where(ip=HOME_IP), explain=True)
    assert explanation(decision, "staff-tool-office") == (
        'staff-tool-office: context.ip in OFFICE_NETWORKS was false (context.ip = "192.0.2.10", '
        'OFFICE_NETWORKS = [cidr("198.51.100.0/24"), cidr("2001:db8:100::/48")])'
    )
    assert explanation(decision, "maintenance-window") == (
        "maintenance-window: weekday(now()) == MAINTENANCE_DAY was false "
        '(weekday(now()) = "monday", MAINTENANCE_DAY = "sunday")'
    )


def test_explain_forbids_that_did_not_apply() -> None:
    decision = decide(load(POLICIES), viewer(), "watch", video(), explain=True)
    assert decision.outcome == "allow"
    assert explanation(decision, "watch-before-release") == (
        "watch-before-release: resource has available_from was false"
    )
    assert explanation(decision, "watch-kids-bedtime") == (
        'watch-kids-bedtime: subject.profile_kind ?? "standard" == "kids" was false '
        '(subject.profile_kind = "standard")'
    )
    assert explanation(decision, "forbid-blocked") == (
        'forbid-blocked: subject.account_status ?? "active" == "blocked" was false '
        "(subject.account_status = missing)"
    )


def test_explain_kids_daytime_shows_the_local_hour() -> None:
    decision = decide(load(MEDIA), kid(), "watch", video(age_rating=0), explain=True)
    assert decision.outcome == "allow"
    assert explanation(decision, "watch-kids-bedtime") == (
        'watch-kids-bedtime: hour(now(), subject.timezone ?? "UTC") < KIDS_FIRST_HOUR or '
        'hour(now(), subject.timezone ?? "UTC") >= KIDS_END_HOUR was false '
        '(hour(now(), subject.timezone ?? "UTC") = 13, KIDS_FIRST_HOUR = 7, KIDS_END_HOUR = 20)'
    )


# --- the example requests ------------------------------------------------------------------

EXAMPLE_NOW = at("2026-11-23T12:00:00Z")
EXAMPLE_DECISIONS = {
    "media-watch-18th-birthday.json": ("allow", ("watch-licensed",)),
    "media-kids-bedtime-tokyo.json": ("deny", ("watch-kids-bedtime",)),
    "media-staff-tool-from-home.json": ("deny", ()),
    "media-playlist-household.json": ("allow", ("playlist-read-household",)),
}


def test_every_media_example_is_checked() -> None:
    assert {path.name for path in EXAMPLES.glob("media-*.json")} == set(EXAMPLE_DECISIONS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_DECISIONS))
def test_media_example(name: str) -> None:
    document = json.loads((EXAMPLES / name).read_text("utf-8"))
    decision = authorize(load(POLICIES), Request.from_json(document), EXAMPLE_NOW)
    assert (decision.outcome, decision.rules) == EXAMPLE_DECISIONS[name]
