"""Reading the log back: damaged lines, file order, filters and statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pdp.audit.reader import Filter, matching, read_records, statistics
from pdp.audit.record import encode
from pdp.audit.writer import AuditLog
from pdp.config import AuditSettings
from tests.audit.builders import NOW, numbered_records, record_for, rejected, shop


def ids(records: Any) -> list[str]:
    return [record["decision_id"] for record in records]


def test_damaged_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    good = numbered_records(shop(), 4)
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(
        encode(good[:1])
        + b'{"v":1,"decision_id":"half-writ\n'  # cut short by a crash, then more was appended
        + encode(good[1:2])
        + b"[1, 2, 3]\n"  # JSON, but not a record
        + b'{"v":1,"s":"\xff\xfe"}\n'  # not UTF-8
        + b"\n"  # blank: not counted
        + encode(good[2:4])
        + b'{"v":1,"decision_id":"in-progre'  # the last write, without its newline
    )
    stream = read_records(path)
    assert ids(stream) == ids(good)
    assert stream.skipped == 4
    assert stream.skipped_at == [f"{path}:{n}" for n in (2, 4, 5, 9)]


def test_a_line_separator_inside_a_value_does_not_split_a_record(tmp_path: Path) -> None:
    record = {**rejected(1), "error": "before\u2028after\u0085end"}
    data = encode([record])
    assert "\u2028".encode() in data  # written raw: a text-mode reader would split here
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(data)
    stream = read_records(path)
    assert list(stream) == [record]
    assert stream.skipped == 0


def test_a_missing_log_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no audit log at"):
        read_records(tmp_path / "decisions.jsonl")
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "missing-directory" / "decisions.jsonl")


def test_rotated_files_are_read_oldest_first_even_with_gaps(tmp_path: Path) -> None:
    records = numbered_records(shop(), 5)
    path = tmp_path / "decisions.jsonl"
    # .12 is left from a time `keep` was larger; .1 and .3 were removed by hand. Names that are
    # not rotations are ignored.
    (tmp_path / "decisions.jsonl.12").write_bytes(encode(records[0:1]))
    (tmp_path / "decisions.jsonl.4").write_bytes(encode(records[1:2]))
    (tmp_path / "decisions.jsonl.2").write_bytes(encode(records[2:3]))
    (tmp_path / "decisions.jsonl.bak").write_bytes(encode(records[3:4]))
    (tmp_path / "decisions.jsonl.\u0663").write_bytes(encode(records[3:4]))  # Arabic-Indic 3
    assert ids(read_records(path)) == ids(records[0:3])  # no current file: still readable
    path.write_bytes(encode(records[4:5]))
    assert ids(read_records(path)) == ids([*records[0:3], records[4]])


def test_a_rotation_while_reading_neither_loses_nor_repeats_a_record(tmp_path: Path) -> None:
    records = numbered_records(shop(), 30)
    path = tmp_path / "decisions.jsonl"
    settings = AuditSettings(path=path, max_bytes=len(encode(records[:10])) + 10, keep=5)
    with AuditLog(settings) as log:
        log.write(records[:10])
        log.write(records[10:20])  # rotates: .1 holds 0-9
        stream = read_records(path)  # a snapshot: the files are open from here on
        log.write(records[20:30])  # rotates again: .2 holds 0-9, .1 holds 10-19
    assert ids(stream) == ids(records[:20])
    assert ids(read_records(path)) == ids(records)


# --- filters -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    policies = shop()
    alcohol = {"type": "Product", "id": "p-a", "category": "alcohol"}
    return [
        record_for(policies, 1, sub="alice", age=30, resource=alcohol),  # allow purchase-alcohol
        record_for(policies, 2, sub="bob", age=16, resource=alcohol),  # deny default
        record_for(
            policies, 3, sub="bob", resource={"type": "Product", "id": "p", "price": 2.5}
        ),  # allow purchase-cheap
        record_for(
            policies, 4, sub="carol", resource=alcohol, context={"country": "KP"}
        ),  # deny blocked-country
        record_for(
            policies, 5, sub="alice", action="read", resource={"type": "Document", "owner": "x"}
        ),  # deny default
        record_for(policies, 6, sub=None, resource=alcohol),  # deny, no subject
        rejected(7),
        record_for(
            policies,
            8,
            sub="alice",
            age=40,
            resource={"type": "Product", "id": "p", "category": "alcohol", "price": 3},
        ),  # allow purchase-alcohol and purchase-cheap
    ]


def selected(sample: list[dict[str, Any]], **criteria: Any) -> list[str]:
    return ids(matching(sample, Filter(**criteria)))


def test_no_filter_keeps_everything(sample: list[dict[str, Any]]) -> None:
    assert selected(sample) == ids(sample)


def test_filters_by_each_field(sample: list[dict[str, Any]]) -> None:
    assert selected(sample, decision="allow") == ["d-000001", "d-000003", "d-000008"]
    assert selected(sample, decision="rejected") == ["r-000007"]
    assert selected(sample, subject="bob") == ["d-000002", "d-000003"]
    assert selected(sample, action="read") == ["d-000005"]
    assert selected(sample, resource_type="Document") == ["d-000005"]
    assert selected(sample, rule="purchase-cheap") == ["d-000003", "d-000008"]
    assert selected(sample, rule="blocked-country") == ["d-000004"]


def test_filters_combine(sample: list[dict[str, Any]]) -> None:
    assert selected(sample, subject="alice", decision="deny") == ["d-000005"]
    assert selected(sample, subject="alice", rule="purchase-alcohol", action="purchase") == [
        "d-000001",
        "d-000008",
    ]
    assert selected(sample, subject="nobody") == []


def test_since_is_inclusive_and_until_exclusive_in_any_zone(sample: list[dict[str, Any]]) -> None:
    # Record n was decided at NOW + n seconds.
    assert selected(sample, since=NOW + timedelta(seconds=6)) == [
        "d-000006",
        "r-000007",
        "d-000008",
    ]
    assert selected(sample, until=NOW + timedelta(seconds=2)) == ["d-000001"]
    in_stockholm = (NOW + timedelta(seconds=3)).astimezone(timezone(timedelta(hours=1)))
    assert selected(sample, since=in_stockholm, until=in_stockholm + timedelta(seconds=2)) == [
        "d-000003",
        "d-000004",
    ]
    # Microseconds count: a hair after record 2's time excludes it.
    assert "d-000002" not in selected(sample, since=NOW + timedelta(seconds=2, microseconds=1))


def test_filters_tolerate_records_of_another_shape() -> None:
    odd: list[dict[str, Any]] = [
        {"v": 1},
        {"v": 1, "time": 5, "subject": "alice", "resource": [], "reasons": "x"},
        {"v": 1, "reasons": [None, {"rule": 3}, {"code": "rule.permit", "rule": "r"}]},
    ]
    assert list(matching(odd, Filter(rule="r"))) == [odd[2]]
    assert (
        list(matching(odd, Filter(subject="alice", since=datetime(2000, 1, 1, tzinfo=UTC)))) == []
    )
    stats = statistics(odd)
    assert stats.total == 3
    assert stats.by_rule == {"r": 1}


# --- statistics ----------------------------------------------------------------------------------


def test_statistics_count_decisions_rules_and_reason_codes(sample: list[dict[str, Any]]) -> None:
    stats = statistics(sample)
    assert stats.total == 8
    assert stats.by_decision == {"allow": 3, "deny": 4, "rejected": 1}
    assert stats.by_rule == {"purchase-alcohol": 2, "purchase-cheap": 2, "blocked-country": 1}
    assert stats.by_reason == {"rule.permit": 4, "default.deny": 3, "rule.forbid": 1}
    assert stats.first_time == "2026-11-23T10:00:01.123456Z"
    assert stats.last_time == "2026-11-23T10:00:08.123456Z"
    assert stats.to_dict() == {
        "total": 8,
        "first_time": "2026-11-23T10:00:01.123456Z",
        "last_time": "2026-11-23T10:00:08.123456Z",
        "by_decision": {"deny": 4, "allow": 3, "rejected": 1},
        "by_rule": {"purchase-alcohol": 2, "purchase-cheap": 2, "blocked-country": 1},
        "by_reason": {"rule.permit": 4, "default.deny": 3, "rule.forbid": 1},
    }


def test_statistics_of_nothing() -> None:
    stats = statistics([])
    assert (stats.total, stats.first_time, stats.last_time) == (0, None, None)
    assert stats.to_dict()["by_decision"] == {}


def test_statistics_take_the_time_range_whatever_the_order(sample: list[dict[str, Any]]) -> None:
    stats = statistics(list(reversed(sample)))
    assert stats.first_time == "2026-11-23T10:00:01.123456Z"
    assert stats.last_time == "2026-11-23T10:00:08.123456Z"
