"""SpoolingWriter and Spool with a store that fails on demand: rows spool while the store is
down and are replayed exactly once when it returns; torn spool lines, records no store takes,
a full buffer, retention tasks, and a dead process's spool adopted by the next one."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter

from sibyl.errors import BackendUnavailableError, InvalidInputError
from sibyl.monitoring.predlog import Codec, Periodic, Spool, SpoolingWriter

CODEC: Codec[dict[str, object]] = Codec(orjson.dumps, orjson.loads)


class FlakyStore:
    """Stores records by id, ignoring ids it has (as the real store does). ``down`` refuses
    every write; ``lose_ack`` commits the next write and then reports an outage (the commit
    happened, the answer was lost); ``poison`` ids are refused as malformed."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, object]] = {}
        self.calls = 0
        self.attempts = 0
        self.down = False
        self.lose_ack = False
        self.poison: set[str] = set()
        self.lock = threading.Lock()

    def write(self, records: Sequence[dict[str, object]]) -> int:
        with self.lock:
            self.attempts += 1
            if self.down:
                raise BackendUnavailableError("store down")
            if any(r["id"] in self.poison for r in records):
                raise InvalidInputError("bad record", field="id")
            self.calls += 1
            new = [r for r in records if r["id"] not in self.rows]
            for r in new:
                self.rows[str(r["id"])] = r
            if self.lose_ack:
                self.lose_ack = False
                raise BackendUnavailableError("connection lost after commit")
            return len(new)


def render(entries: Sequence[int]) -> list[dict[str, object]]:
    return [{"id": f"row-{e}", "n": e} for e in entries]


def make(
    store: FlakyStore,
    tmp: Path,
    *,
    clock: Callable[[], float] = time.monotonic,
    **kw: object,
) -> tuple[SpoolingWriter[int, dict[str, object]], Spool]:
    spool = Spool(tmp / "spool", max_bytes=kw.pop("max_bytes", 1 << 20))  # type: ignore[arg-type]
    spool.open()
    writer: SpoolingWriter[int, dict[str, object]] = SpoolingWriter(
        "test",
        store.write,
        render,
        spool=spool,
        codec=CODEC,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )
    return writer, spool


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_rows_reach_the_store_in_batches(tmp_path: Path) -> None:
    store = FlakyStore()
    writer, spool = make(store, tmp_path, flush_rows=4)
    for i in range(10):
        writer.submit(i)
    writer.flush()
    assert sorted(store.rows) == sorted(f"row-{i}" for i in range(10))
    assert store.calls == 3  # 4 + 4 + 2
    assert writer.tally["written"] == 10 and writer.tally["spooled"] == 0
    assert spool.bytes == 0 and writer.backlog == 0


def test_an_outage_spools_and_the_spool_is_replayed_once_when_the_store_returns(
    tmp_path: Path,
) -> None:
    store = FlakyStore()
    now = [0.0]
    writer, spool = make(store, tmp_path, flush_rows=3, clock=lambda: now[0])
    store.down = True
    for i in range(7):
        writer.submit(i)
    writer._drain()
    writer._deliver_outbox()  # the first write fails: the store is marked down
    assert not writer.healthy and not store.rows
    assert writer.tally["spooled"] == 7 and spool.rows == 7 and writer.backlog == 7
    writer._replay(force=False)  # backoff not over: no attempt
    attempts = store.attempts
    writer._replay(force=False)
    assert store.attempts == attempts
    store.down = False
    now[0] += 1.0  # past the first backoff (0.5 s ± 20 %)
    writer._shipper_step()
    assert writer.healthy
    assert sorted(store.rows) == sorted(f"row-{i}" for i in range(7))
    assert writer.tally["replayed"] == 7 and spool.bytes == 0 and spool.rows == 0


def test_backoff_doubles_up_to_the_maximum(tmp_path: Path) -> None:
    store = FlakyStore()
    now = [0.0]
    writer, _ = make(store, tmp_path, clock=lambda: now[0], retry_max_s=3.0)
    store.down = True
    writer.submit(1)
    writer._drain()
    writer._deliver_outbox()
    waits = []
    for _ in range(6):
        waits.append(writer._next_probe - now[0])
        now[0] = writer._next_probe + 1e-6
        writer._replay(force=False)
    for wait, base in zip(waits, [0.5, 1, 2, 3, 3, 3], strict=True):
        assert 0.8 * base <= wait <= 1.2 * base
    assert store.attempts == 7


def test_a_lost_acknowledgement_does_not_duplicate_rows(tmp_path: Path) -> None:
    store = FlakyStore()
    writer, spool = make(store, tmp_path, flush_rows=5)
    for i in range(5):
        writer.submit(i)
    store.lose_ack = True  # committed, but the writer hears an outage and spools the batch
    writer._drain()
    writer._deliver_outbox()
    assert len(store.rows) == 5 and spool.rows == 5
    writer._replay(force=True)  # written again: the ids are already there
    assert len(store.rows) == 5 and spool.bytes == 0


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    store = FlakyStore()
    writer, spool = make(store, tmp_path)
    store.down = True
    for i in range(3):
        writer.submit(i)
    writer.flush()
    segment = spool.oldest()
    assert segment is not None
    with segment.path.open("ab") as fh:  # a crash in the middle of the next append
        fh.write(b'{"id": "row-99", "n"')
    with segment.path.open("rb") as fh:
        assert fh.read().count(b"\n") == 3
    store.down = False
    writer._replay(force=True)
    assert sorted(store.rows) == ["row-0", "row-1", "row-2"]
    assert writer.tally["corrupt"] == 1 and spool.bytes == 0


def test_a_corrupt_line_in_the_middle_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    store = FlakyStore()
    writer, spool = make(store, tmp_path)
    store.down = True
    writer.submit(0)
    writer.flush()
    spool.append([b"not json"])
    writer.submit(1)
    writer.flush()
    store.down = False
    writer.flush()
    assert sorted(store.rows) == ["row-0", "row-1"]
    assert writer.tally["corrupt"] == 1


def test_a_record_no_store_takes_is_dropped_alone(tmp_path: Path) -> None:
    store = FlakyStore()
    store.poison = {"row-5"}
    writer, _ = make(store, tmp_path, flush_rows=8)
    for i in range(8):
        writer.submit(i)
    writer.flush()
    assert sorted(store.rows) == sorted(f"row-{i}" for i in range(8) if i != 5)
    assert writer.tally["dropped"] == 1 and writer.tally["written"] == 7


def test_a_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    counter = Counter("rows", "rows", ["result"], registry=registry)
    store = FlakyStore()
    writer, _ = make(store, tmp_path, max_pending=3, counter=counter)
    for i in range(5):
        writer.submit(i)
    assert writer.tally["dropped"] == 2
    assert registry.get_sample_value("rows_total", {"result": "dropped"}) == 2
    writer.flush()
    assert len(store.rows) == 3


def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    writer, spool = make(store, tmp_path, max_bytes=100, flush_rows=1)
    for i in range(10):
        writer.submit(i)
    writer.flush()
    assert spool.bytes <= 100
    assert writer.tally["spooled"] + writer.tally["dropped"] == 10
    assert writer.tally["dropped"] > 0


def test_periodic_tasks_run_only_while_the_store_is_up(tmp_path: Path) -> None:
    store = FlakyStore()
    now = [0.0]
    runs: list[float] = []
    writer, _ = make(store, tmp_path, clock=lambda: now[0],
                     periodic=[Periodic("retention", 10.0, lambda: runs.append(now[0]))])  # fmt: skip
    writer._shipper_step()
    now[0] = 10.0
    writer._shipper_step()
    store.down = True
    writer.submit(1)
    writer._drain()
    writer._deliver_outbox()
    now[0] = 20.0
    writer._shipper_step()  # down: no retention
    assert runs == [10.0]


def test_threads_write_and_close_leaves_nothing_behind(tmp_path: Path) -> None:
    store = FlakyStore()
    writer, spool = make(store, tmp_path, flush_interval_s=0.05, flush_rows=50)
    writer.start()
    for i in range(500):
        writer.submit(i)
    wait_until(lambda: len(store.rows) == 500)
    store.down = True
    for i in range(500, 700):
        writer.submit(i)
    wait_until(lambda: writer.tally["spooled"] >= 200)
    store.down = False
    wait_until(lambda: len(store.rows) == 700)
    for i in range(700, 800):
        writer.submit(i)
    writer.close()
    spool.close()
    assert sorted(store.rows) == sorted(f"row-{i}" for i in range(800))
    assert not spool.dir.exists()  # nothing left to replay: removed


def test_rows_left_in_a_dead_process_spool_are_replayed_by_the_next(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    first, old_spool = make(store, tmp_path, flush_interval_s=0.05)
    first.start()
    for i in range(20):
        first.submit(i)
    first.close(timeout_s=2)
    old_spool.close()  # the store never came back: the rows stay on disk
    assert old_spool.dir.exists() and not store.rows
    store.down = False
    second, new_spool = make(store, tmp_path)  # opening adopts the dead directory
    assert not old_spool.dir.exists() and new_spool.rows == 20
    second.flush()
    assert sorted(store.rows) == sorted(f"row-{i}" for i in range(20))


def test_a_living_process_spool_is_not_adopted(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    alive, spool = make(store, tmp_path)
    alive.submit(1)
    alive.flush()
    other = Spool(tmp_path / "spool", max_bytes=1 << 20)
    other.open()
    assert other.rows == 0 and spool.rows == 1
    other.close()


def test_segments_rotate_and_replay_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=64)
    spool.open()
    for i in range(10):
        assert spool.append([orjson.dumps({"i": i})])
    order = []
    while (segment := spool.oldest()) is not None:
        order += [orjson.loads(line)["i"] for line in spool.read(segment).lines]
        spool.remove(segment)
    assert order == list(range(10))
    assert spool.bytes == 0 and not list(spool.dir.glob("*.jsonl"))


def test_a_failed_append_cuts_the_segment_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.open()
    assert spool.append([b'{"i":0}'])
    real_fsync = os.fsync

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        spool.append([b'{"i":1}'])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert spool.append([b'{"i":2}'])
    lines = []
    while (segment := spool.oldest()) is not None:
        data = spool.read(segment)
        assert data.torn == 0
        lines += data.lines
        spool.remove(segment)
    assert lines == [b'{"i":0}', b'{"i":2}']
