"""The run store contract, for the SQLite store and the Redis store alike (a real redis-server)."""

from __future__ import annotations

import threading
import time

import pytest

from proxy_ext.runs.store import RunRecord, SqliteRunStore, cursor_of, parse_cursor


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path):
    """A factory: every call opens another connection to the same store (as another worker would)."""
    opened = []
    if request.param == "sqlite":
        def factory():
            opened.append(SqliteRunStore(tmp_path / "runs.sqlite3"))
            return opened[-1]
    else:
        import redis

        from proxy_ext.runs.redis_store import RedisRunStore

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()

        def factory():
            opened.append(RedisRunStore(url))
            return opened[-1]
    yield factory
    for store in opened:
        store.close()


def record(run_id: str, owner: str = "o1", status: str = "queued", created: float | None = None, team: str | None = None) -> RunRecord:
    return RunRecord(id=run_id, owner=owner, team_id=team, status=status, request={"input": run_id}, caller="sealed",
                     created_at=created if created is not None else time.time())


def test_create_get_update(make_store):
    store = make_store()
    store.create(record("a" * 32))
    assert store.get("a" * 32).request == {"input": "a" * 32}
    assert store.get("b" * 32) is None
    assert store.update("a" * 32, lambda r: False) is None
    updated = store.update("a" * 32, lambda r: setattr(r, "checkpoint", {"added": [1]}) or True)
    assert updated.checkpoint == {"added": [1]} and store.get("a" * 32).checkpoint == {"added": [1]}


def test_every_queued_run_is_claimed_exactly_once_by_racing_workers(make_store):
    first = make_store()
    for i in range(60):
        first.create(record(f"{i:032x}", created=1000.0 + i))
    claimed: list[tuple[str, str]] = []

    def worker(name: str) -> None:
        store = make_store()
        while (taken := store.claim(name, 30, time.time())) is not None:
            claimed.append((taken.id, name))

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [run_id for run_id, _ in claimed]
    assert sorted(ids) == sorted(f"{i:032x}" for i in range(60)) and len(ids) == len(set(ids))
    assert first.get(f"{0:032x}").status == "running" and first.get(f"{0:032x}").attempts == 1


def test_a_running_run_is_claimed_again_only_after_its_lease_ran_out(make_store):
    store = make_store()
    store.create(record("c" * 32, created=1.0))
    now = time.time()
    assert store.claim("w1", 10, now).lease_owner == "w1"
    assert store.claim("w2", 10, now + 5) is None
    again = store.claim("w2", 10, now + 11)
    assert again.lease_owner == "w2" and again.attempts == 2


def test_claims_skip_the_owners_asked_to(make_store):
    store = make_store()
    store.create(record("1" * 32, owner="busy", created=1.0))
    store.create(record("2" * 32, owner="idle", created=2.0))
    assert store.claim("w", 10, time.time(), frozenset({"busy"})).id == "2" * 32
    assert store.claim("w", 10, time.time(), frozenset({"busy"})) is None
    assert store.claim("w", 10, time.time()).id == "1" * 32


def test_events_are_numbered_from_one_and_replay_after_an_id(make_store):
    store = make_store()
    for n in range(5):
        assert store.append_event("d" * 32, "tool_call", {"n": n}) == n + 1
    assert [seq for seq, _, _ in store.events("d" * 32, 0)] == [1, 2, 3, 4, 5]
    assert store.events("d" * 32, 3) == [(4, "tool_call", {"n": 3}), (5, "tool_call", {"n": 4})]
    assert store.events("e" * 32, 0) == []


def test_lists_are_per_owner_or_team_filtered_and_paged_without_gaps(make_store):
    store = make_store()
    for i in range(25):
        store.create(record(f"{i:032x}", owner="o1" if i % 2 else "o2", status="completed" if i % 3 else "queued",
                            created=2000.0 + i // 2, team="t1" if i == 4 else None))  # equal timestamps in pairs
    seen, before = [], None
    while True:
        page, before = store.list("o1", None, None, 4, before)
        seen += [r.id for r in page]
        if before is None:
            break
    assert seen == [f"{i:032x}" for i in sorted((i for i in range(25) if i % 2), key=lambda i: (2000 + i // 2, f"{i:032x}"), reverse=True)]
    assert {r.id for r in store.list("o1", "t1", None, 100, None)[0]} == {f"{i:032x}" for i in range(25) if i % 2 or i == 4}
    completed = store.list(None, None, "completed", 100, None)[0]
    assert {r.id for r in completed} == {f"{i:032x}" for i in range(25) if i % 3}
    assert store.count("queued") == len([i for i in range(25) if not i % 3])


@pytest.mark.parametrize("cursor", ["nan:x", "nan", "-nan:" + "a" * 32, "inf:x", "-inf:x", "1e999:x", "junk", ":"])
def test_a_malformed_cursor_never_breaks_the_store(make_store, cursor):
    """Route input reaches list(): a cursor that is no page position must not raise (Redis refused
    ``nan`` as a score: a 500 on ``GET /agent/runs?before=nan:x``)."""
    store = make_store()
    store.create(record("a" * 32, created=1000.0))
    page, _ = store.list("o1", None, None, 10, cursor)
    assert [r.id for r in page] in ([], ["a" * 32])


@pytest.mark.parametrize("before", ["1:2", "1.5:zz", "1:" + "0" * 32 + ":x", "1:" + "A" * 32, "\u0661:a", "1_000:a", " 1:a", "1 :a", "\uff11:a", "1e3:a", "0x1p3:a", "+1:a", "infinity:a"])
def test_a_cursor_is_a_next_before_and_nothing_float_also_reads(before):
    """Unicode digits, ``_`` and exponents are numbers to float(), not a ``next_before`` (``GET
    /agent/runs?before=\u0661:a`` answered 200 with a page instead of 400); nor is a run id that is
    no run id (``1:2`` was a 200 with an empty page)."""
    assert parse_cursor(before) is None
    assert parse_cursor(cursor_of(record("a" * 32, created=1733212345.25))) == (1733212345.25, "a" * 32)


def test_due_approvals_and_purge(make_store):
    store = make_store()
    waiting = record("f" * 32, status="awaiting_approval")
    waiting.approval_deadline = 50.0
    store.create(waiting)
    assert store.due_approvals(49.0) == [] and store.due_approvals(51.0) == ["f" * 32]
    now = time.time()
    for i in range(6):
        store.create(record(f"{i:032x}", status="completed", created=now - 100 + i))
        store.append_event(f"{i:032x}", "run_completed", {})
    store.create(record("9" * 32, status="running", created=now - 1000))
    assert store.purge(now, retention_s=97.5, max_runs=4) == 3  # 0, 1, 2 too old; 3..5 kept (within max_runs)
    assert store.get(f"{2:032x}") is None and store.events(f"{2:032x}", 0) == []
    assert store.get(f"{3:032x}") is not None and store.get("9" * 32) is not None  # unfinished runs are never purged
    assert store.purge(now, retention_s=1e9, max_runs=1) == 2
    assert [r.id for r in store.list(None, None, "completed", 10, None)[0]] == [f"{5:032x}"]
