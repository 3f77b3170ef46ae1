"""The decision log on disk: whole lines, rotation without loss, threads, and failures."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pdp.audit.reader import read_records
from pdp.audit.record import encode
from pdp.audit.writer import AuditLog, AuditWriteError
from pdp.config import AuditSettings
from tests.audit.builders import numbered_records, shop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """Enough distinct real records for every test here (each about 400 bytes)."""
    return numbered_records(shop(), 400)


def ids(records: Any) -> list[str]:
    return [record["decision_id"] for record in records]


def lines_of(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def batches(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def test_writes_reach_the_file_as_whole_lines_before_write_returns(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "audit" / "nested" / "decisions.jsonl"  # directories are created
    log = AuditLog(AuditSettings(path=path))
    log.write(records[:3])
    # Read by another file object while the log is still open: the bytes are with the OS.
    assert path.read_bytes() == encode(records[:3])
    log.write(records[3:5])
    log.write([])
    assert ids(lines_of(path)) == ids(records[:5])
    log.close()


def test_the_log_is_not_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    AuditLog(AuditSettings(path=path)).close()
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0


def test_reopening_appends_and_counts_what_is_there(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    settings = AuditSettings(path=path, max_bytes=len(encode(records[:4])) + 10, keep=3)
    with AuditLog(settings) as log:
        log.write(records[:4])
    with AuditLog(settings) as log:
        log.write(records[4:6])  # would pass max_bytes on top of the existing four: rotates
    assert ids(lines_of(path.with_name("decisions.jsonl.1"))) == ids(records[:4])
    assert ids(lines_of(path)) == ids(records[4:6])


@pytest.mark.parametrize("fsync", [False, True])
def test_rotation_loses_no_record_and_keeps_the_order(
    tmp_path: Path, records: list[dict[str, Any]], fsync: bool
) -> None:
    path = tmp_path / "decisions.jsonl"
    written = records[:120]
    max_bytes = len(encode(written)) // 4 + 100  # about four rotations
    with AuditLog(AuditSettings(path=path, max_bytes=max_bytes, keep=6, fsync=fsync)) as log:
        for batch in batches(written, 7):
            log.write(batch)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "decisions.jsonl"
    assert len(names) >= 4, names
    for file in tmp_path.iterdir():
        assert file.stat().st_size <= max_bytes
    assert ids(read_records(path)) == ids(written)


def test_rotation_keeps_at_most_keep_files_and_drops_the_oldest(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    batch_bytes = len(encode(records[:5]))
    settings = AuditSettings(path=path, max_bytes=2 * batch_bytes + 50, keep=2)
    written = records[:200]
    with AuditLog(settings) as log:
        for batch in batches(written, 5):  # a rotation every second batch: about 20
            log.write(batch)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "decisions.jsonl",
        "decisions.jsonl.1",
        "decisions.jsonl.2",
    ]
    kept = ids(read_records(path))
    # The newest records, contiguous, ending with the last one written.
    assert kept == ids(written[-len(kept) :])
    assert len(kept) == 30


def test_a_batch_larger_than_max_bytes_is_written_whole(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    settings = AuditSettings(path=path, max_bytes=len(encode(records[:2])), keep=2)
    with AuditLog(settings) as log:
        log.write(records[:1])
        log.write(records[1:11])  # never split: rotated into a fresh file, which it overfills
        log.write(records[11:12])
    assert ids(lines_of(path.with_name("decisions.jsonl.2"))) == ids(records[:1])
    assert ids(lines_of(path.with_name("decisions.jsonl.1"))) == ids(records[1:11])
    assert ids(lines_of(path)) == ids(records[11:12])


def test_eight_threads_write_whole_batches_in_order(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    threads_count, batches_per_thread, batch_size = 8, 60, 5
    # Rotating too, so rotation runs while other threads wait to write.
    log = AuditLog(AuditSettings(path=path, max_bytes=64 * 1024, keep=1000))
    start = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def writer(thread: int) -> None:
        try:
            start.wait()
            for number in range(batches_per_thread):
                batch = [
                    {**records[(thread * 50 + number + item) % len(records)], "w": [thread, number]}
                    for item in range(batch_size)
                ]
                log.write(batch)
        except BaseException as error:  # reported below: a thread's exception is otherwise lost
            failures.append(error)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    log.close()
    assert failures == []

    stream = read_records(path)
    written = [tuple(record["w"]) for record in stream]
    assert stream.skipped == 0  # every line whole
    assert len(written) == threads_count * batches_per_thread * batch_size
    # Each batch's records are adjacent (a batch is one write) ...
    for offset in range(0, len(written), batch_size):
        assert len(set(written[offset : offset + batch_size])) == 1, offset
    # ... and each thread's batches appear in the order it wrote them.
    for thread in range(threads_count):
        numbers = [n for t, n in written[::batch_size] if t == thread]
        assert numbers == list(range(batches_per_thread))


# --- failures ------------------------------------------------------------------------------------


def test_a_log_path_that_is_a_directory_fails_at_once(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.mkdir()
    with pytest.raises(AuditWriteError, match=r"decisions\.jsonl: cannot write the audit log"):
        AuditLog(AuditSettings(path=path))


def test_a_log_directory_that_cannot_be_created_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where the directory should be")
    with pytest.raises(AuditWriteError):
        AuditLog(AuditSettings(path=tmp_path / "var" / "audit" / "decisions.jsonl"))


def test_a_full_disk_raises_and_the_log_stays_open(records: list[dict[str, Any]]) -> None:
    log = AuditLog(AuditSettings(path=Path("/dev/full")))  # every write: ENOSPC
    for _ in range(2):
        with pytest.raises(AuditWriteError, match="No space left on device"):
            log.write(records[:3])
    log.close()


def test_a_closed_log_raises_and_close_is_idempotent(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = AuditLog(AuditSettings(path=path))
    log.write(records[:1])
    log.close()
    log.close()
    with pytest.raises(AuditWriteError, match="closed"):
        log.write(records[1:2])
    assert ids(lines_of(path)) == ids(records[:1])


def test_a_file_closed_underneath_raises_then_the_log_recovers(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = AuditLog(AuditSettings(path=path))
    log.write(records[:2])
    assert log._fd is not None
    os.close(log._fd)  # what a stray close() elsewhere in the process would do
    with pytest.raises(AuditWriteError, match="the file was closed"):
        log.write(records[2:4])
    log.write(records[4:6])  # reopened
    log.close()
    assert ids(lines_of(path)) == ids(records[:2] + records[4:6])


def test_a_record_that_cannot_be_encoded_raises_an_audit_write_error(tmp_path: Path) -> None:
    looped: dict[str, Any] = {"v": 1}
    looped["self"] = looped
    with (
        AuditLog(AuditSettings(path=tmp_path / "decisions.jsonl")) as log,
        pytest.raises(AuditWriteError, match="cannot encode"),
    ):
        log.write([looped])


# A real partial write: the file size limit (RLIMIT_FSIZE) makes os.write stop part way and the
# next call fail with EFBIG, as a full disk does. In a child process, so pytest's own files are
# not limited. Python ignores SIGXFSZ, so the process is not killed.
_FILE_SIZE_LIMIT_SCRIPT = """
import json, resource, sys
from pathlib import Path
from pdp.audit.writer import AuditLog, AuditWriteError
from pdp.config import AuditSettings

path = Path(sys.argv[1])
record = lambda n: {"n": n, "pad": "x" * 100}
log = AuditLog(AuditSettings(path=path, max_bytes=10**9))
log.write([record(0), record(1)])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 150, hard))
outcome = {}
try:
    log.write([record(2), record(3), record(4)])  # 1 record fits, then the limit
    outcome["first"] = "written"
except AuditWriteError as error:
    outcome["first"] = str(error)
outcome["size_after_failure"] = path.stat().st_size
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # the disk frees up
log.write([record(5)])
log.close()
print(json.dumps(outcome))
"""


def test_a_write_cut_short_is_taken_back_and_later_writes_succeed(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMIT_SCRIPT, str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert "File too large" in outcome["first"]
    records = lines_of(path)
    # The failed batch left nothing behind (not even its first record, which did fit), so it is
    # either recorded or reported as not recorded; the records before and after are intact.
    assert [record["n"] for record in records] == [0, 1, 5]
    assert outcome["size_after_failure"] == len(encode([{"n": 0, "pad": "x" * 100}])) * 2
