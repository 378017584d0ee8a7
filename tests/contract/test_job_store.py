"""The ``JobStore`` contract (jobs and the chunks of fanned-out jobs) on SQLite and on the REAL
PostgreSQL of this machine (a fresh database per run)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sibyl.errors import ConflictError, InvalidInputError, NotFoundError
from sibyl.store import (
    ChunkState,
    JobPriority,
    JobState,
    LeaseClaim,
    NewJob,
    SQLStore,
    get_store,
)
from tests.contract.store_support import Backend


class Clock:
    """A settable clock for the store (leases expire when the test says so)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def url(backend: Backend) -> Iterator[str]:
    with backend.empty() as u:
        get_store(u).migrate()
        yield u


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[SQLStore]:
    s = SQLStore(url, clock=clock)
    yield s
    s.close()


def new_job(store: SQLStore, **kw: object) -> str:
    job = store.create_job(NewJob("toy", {"n": 1}, **kw))  # type: ignore[arg-type]
    return job.id


def test_create_get_list(store: SQLStore) -> None:
    job = store.create_job(NewJob("toy", {"n": 1}, JobPriority.HIGH, max_attempts=2))
    assert job.state is JobState.QUEUED and job.priority is JobPriority.HIGH
    assert job.attempts == 0 and job.max_attempts == 2 and job.params == {"n": 1}
    assert store.get_job(job.id) == job
    assert job.id in [j.id for j in store.list_jobs(kind="toy", state=JobState.QUEUED)]
    assert store.list_jobs(kind="no-such-kind") == []
    with pytest.raises(NotFoundError, match="sibyl jobs list"):
        store.get_job("nope")
    with pytest.raises(InvalidInputError) as err:
        store.create_job(NewJob("toy", {}, max_attempts=0))
    assert err.value.field == "max_attempts"
    with pytest.raises(InvalidInputError) as err:
        store.list_jobs(limit=0)
    assert err.value.field == "limit"


def test_claim_is_compare_and_set(store: SQLStore) -> None:
    jid = new_job(store)
    claimed = store.claim_job(jid, "w1", 30)
    assert claimed is not None and claimed.state is JobState.RUNNING
    assert claimed.attempts == 1 and claimed.worker == "w1" and claimed.started_at is not None
    assert store.claim_job(jid, "w2", 30) is None  # taken
    assert not store.finish_job(jid, "w2", JobState.SUCCEEDED)  # not w2's claim
    assert store.finish_job(jid, "w1", JobState.SUCCEEDED, result={"ok": True})
    done = store.get_job(jid)
    assert done.state is JobState.SUCCEEDED and done.result == {"ok": True}
    assert done.progress == 1.0 and done.finished_at is not None and done.worker is None


def test_concurrent_claims_have_one_winner(store: SQLStore) -> None:
    jid = new_job(store)
    winners: list[str] = []
    barrier = threading.Barrier(4)

    def grab(name: str) -> None:
        barrier.wait()
        if store.claim_job(jid, name, 30) is not None:
            winners.append(name)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_release_retries_and_refunds(store: SQLStore) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w1", 30)
    assert store.release_job(jid, "w1", "boom; retry in 5 s")
    job = store.get_job(jid)
    assert job.state is JobState.QUEUED and job.attempts == 1 and job.error == "boom; retry in 5 s"
    store.claim_job(jid, "w2", 30)
    assert store.release_job(jid, "w2", "shut down", refund=True)
    assert store.get_job(jid).attempts == 1  # the interrupted attempt did not count


def test_cancel(store: SQLStore) -> None:
    queued = new_job(store)
    assert store.cancel_job(queued).state is JobState.CANCELLED
    assert store.claim_job(queued, "w", 30) is None  # a cancelled job never runs
    running = new_job(store)
    store.claim_job(running, "w", 30)
    asked = store.cancel_job(running)
    assert asked.state is JobState.RUNNING and asked.cancel_requested
    assert store.renew_leases([LeaseClaim(running, "w")], 30) == {running}
    store.finish_job(running, "w", JobState.CANCELLED, error="cancelled on request")
    with pytest.raises(ConflictError, match="already cancelled"):
        store.cancel_job(running)


def test_renew_reports_lost_claims_and_stores_progress(store: SQLStore, clock: Clock) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w", 10)
    clock.advance(5)
    assert store.renew_leases([LeaseClaim(jid, "w", progress=0.4, message="half")], 10) == set()
    job = store.get_job(jid)
    assert job.progress == 0.4 and job.message == "half"
    assert job.lease_until == clock.now + timedelta(seconds=10)
    assert store.renew_leases([LeaseClaim(jid, "someone-else")], 10) == {jid}


def test_fan_out_chunks_and_completion(store: SQLStore) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w", 30)
    assert store.fan_out(jid, "w", [{"i": 0}, {"i": 1}, {"i": 2}], {"model": "m"})
    job = store.get_job(jid)
    assert job.fanned_out and job.chunks_total == 3 and job.plan == {"model": "m"}
    assert job.worker is None and job.lease_until is None
    got = store.claim_chunk(jid, 1, "c1", 30)
    assert got is not None and got[1].spec == {"i": 1} and got[1].attempts == 1
    assert store.claim_chunk(jid, 1, "c2", 30) is None
    remaining = []
    for idx in (0, 2):
        assert store.claim_chunk(jid, idx, f"c{idx}", 30) is not None
    for idx, worker in ((0, "c0"), (1, "c1"), (2, "c2")):
        remaining.append(store.finish_chunk(jid, idx, worker, {"rows": 10}))
    assert remaining == [2, 1, 0]
    assert store.finish_chunk(jid, 0, "c0", {"rows": 10}) is None  # counted once
    assert store.get_job(jid).progress < 1.0
    assert store.complete_fan_out(jid, {"rows": 30})
    done = store.get_job(jid)
    assert done.state is JobState.SUCCEEDED and done.result == {"rows": 30}
    assert [c.state for c in store.list_chunks(jid)] == [ChunkState.DONE] * 3


def test_concurrent_chunk_completions_see_zero_once(store: SQLStore) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w", 30)
    n = 6
    store.fan_out(jid, "w", [{"i": i} for i in range(n)], {})
    for i in range(n):
        store.claim_chunk(jid, i, f"c{i}", 30)
    seen: list[int | None] = []
    barrier = threading.Barrier(n)

    def done(i: int) -> None:
        barrier.wait()
        seen.append(store.finish_chunk(jid, i, f"c{i}", {}))

    threads = [threading.Thread(target=done, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(x for x in seen if x is not None) == list(range(n))
    assert store.get_job(jid).chunks_done == n


def test_a_failed_chunk_fails_the_job_and_stops_the_others(store: SQLStore) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w", 30)
    store.fan_out(jid, "w", [{}, {}], {})
    store.claim_chunk(jid, 0, "c0", 30)
    assert store.release_chunk(jid, 0, "c0", "bad row", final=False)
    assert store.list_chunks(jid)[0].state is ChunkState.PENDING
    store.claim_chunk(jid, 0, "c0b", 30)
    store.claim_chunk(jid, 1, "c1", 30)
    assert store.release_chunk(jid, 0, "c0b", "bad row", final=True)
    job = store.get_job(jid)
    assert job.state is JobState.FAILED and "chunk 0 failed: bad row" in (job.error or "")
    assert store.renew_leases([LeaseClaim(jid, "c1", 1)], 30) == {jid}
    assert store.claim_chunk(jid, 0, "c9", 30) is None


def test_cancelling_a_fanned_out_job_is_immediate(store: SQLStore) -> None:
    jid = new_job(store)
    store.claim_job(jid, "w", 30)
    store.fan_out(jid, "w", [{}, {}], {})
    assert store.cancel_job(jid).state is JobState.CANCELLED
    assert store.claim_chunk(jid, 0, "c", 30) is None


def test_reaper_recovers_lost_work(store: SQLStore, clock: Clock) -> None:
    lost = new_job(store, max_attempts=2)
    store.claim_job(lost, "dead", 10)
    last = new_job(store, max_attempts=1)
    store.claim_job(last, "dead", 10)
    fanned = new_job(store)
    store.claim_job(fanned, "w", 10)
    store.fan_out(fanned, "w", [{}, {}], {})
    store.claim_chunk(fanned, 0, "dead", 10)
    clock.advance(11)
    reaped = store.reap_jobs(stale_s=3600, finish_after_s=10)
    assert lost in [j.id for j in reaped.jobs]
    assert store.get_job(lost).state is JobState.QUEUED
    assert last in reaped.failed and store.get_job(last).state is JobState.FAILED
    assert (fanned, 0) in [(c.job_id, c.idx) for c in reaped.chunks]
    assert store.list_chunks(fanned)[0].state is ChunkState.PENDING
    assert store.finish_job(lost, "dead", JobState.SUCCEEDED) is False  # the claim is gone
    again = store.reap_jobs(stale_s=3600, finish_after_s=10)
    assert lost not in [j.id for j in again.jobs]  # requeued once, not on every pass


def test_reaper_resends_overdue_messages_and_unfinished_fan_outs(
    store: SQLStore, clock: Clock
) -> None:
    queued = new_job(store)
    done = new_job(store)
    store.claim_job(done, "w", 100)
    store.fan_out(done, "w", [{}], {})
    store.claim_chunk(done, 0, "c", 100)
    store.finish_chunk(done, 0, "c", {})
    clock.advance(120)
    reaped = store.reap_jobs(stale_s=60, finish_after_s=60)
    assert queued in [j.id for j in reaped.jobs]
    assert done in [j.id for j in reaped.finishing]
    assert store.get_job(queued).state is JobState.QUEUED
    assert queued not in [j.id for j in store.reap_jobs(stale_s=60, finish_after_s=60).jobs]


def test_delete_finished_jobs(store: SQLStore, clock: Clock) -> None:
    old = new_job(store)
    store.cancel_job(old)
    clock.advance(10)
    running = new_job(store)
    store.claim_job(running, "w", 30)
    assert store.delete_jobs(older_than=clock.now - timedelta(seconds=5)) >= 1
    with pytest.raises(NotFoundError):
        store.get_job(old)
    assert store.get_job(running).state is JobState.RUNNING
