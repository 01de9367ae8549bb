"""Durable runs in Redis: every worker of every instance sees the same runs.

Keys (prefix ``proxy_ext:durable:``): ``run:<id>`` the record (JSON), ``events:<id>`` a list of events
(the list position is the sequence number), and sorted sets indexing runs by creation time —
``all``, ``owner:<hash>``, ``team:<id>``, ``status:<status>`` — plus ``approvals`` by deadline.
Updates are optimistic (``WATCH`` / ``MULTI``), so two workers never both claim a run.
"""

from __future__ import annotations

import builtins
import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from proxy_ext.runs.outage import StoreBreaker

from proxy_ext.runs.store import (FINISHED, STATUSES, Mutation, RunRecord, RunStore, StoredEvent, claimable, cursor_of,
                                  parse_cursor, take)

__all__ = ["RedisRunStore"]

_Scored = list[tuple[Any, float]]
"""What redis-py returns for a sorted-set range with scores (its stubs say any response)."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

PREFIX = "proxy_ext:durable:"  # apart from scale.redis_key_prefix (proxy_ext:runs, the run-slot leases)
_CLAIM_BATCH = 20


UNREACHABLE: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
"""What counts as "the store cannot be reached" (503); any other error is a bug and stays one."""

_M = TypeVar("_M", bound=Callable[..., Any])


def _guarded(method: _M) -> _M:
    """Through the store's :class:`~proxy_ext.runs.outage.StoreBreaker` (503 at once while it is down)."""
    @functools.wraps(method)
    def wrapper(self: "RedisRunStore", *args: Any, **kwargs: Any) -> Any:
        return self.breaker.call(method, self, *args, **kwargs)
    return cast(_M, wrapper)


class RedisRunStore(RunStore):
    """Runs in Redis (``redis://host:port/db``). Every call waits at most ``timeout_s``
    (``runs.redis_timeout_s``); a connection error or a timeout opens the breaker."""

    def __init__(self, url: str, timeout_s: float = 1.0) -> None:
        # One retry, on a fresh connection, for a connection that broke (Redis restarted); none on a timeout (hung Redis).
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           health_check_interval=30, retry=retry, retry_on_timeout=False)
        self.breaker = StoreBreaker(url.split("@")[-1].removeprefix("redis://"), UNREACHABLE, self.client.ping)

    @staticmethod
    def _key(kind: str, name: str = "") -> str:
        return f"{PREFIX}{kind}:{name}" if name else f"{PREFIX}{kind}"

    def _index(self, pipe: Any, record: RunRecord, previous: RunRecord | None) -> None:
        if previous is not None and previous.status != record.status:
            pipe.zrem(self._key("status", previous.status), record.id)
        pipe.zadd(self._key("status", record.status), {record.id: record.created_at})
        if record.status == "awaiting_approval" and record.approval_deadline is not None:
            pipe.zadd(self._key("approvals"), {record.id: record.approval_deadline})
        else:
            pipe.zrem(self._key("approvals"), record.id)

    @_guarded
    def create(self, record: RunRecord) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key("run", record.id), record.to_json())
        pipe.zadd(self._key("all"), {record.id: record.created_at})
        pipe.zadd(self._key("owner", record.owner), {record.id: record.created_at})
        if record.team_id:
            pipe.zadd(self._key("team", record.team_id), {record.id: record.created_at})
        self._index(pipe, record, None)
        pipe.execute()

    @_guarded
    def get(self, run_id: str) -> RunRecord | None:
        raw = self.client.get(self._key("run", run_id))
        return RunRecord.from_json(raw) if raw else None

    @_guarded
    def update(self, run_id: str, mutate: Mutation) -> RunRecord | None:
        key = self._key("run", run_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if not raw:
                        return None
                    previous = RunRecord.from_json(raw)
                    record = RunRecord.from_json(raw)
                    if not mutate(record):
                        return None
                    record.updated_at = time.time()
                    pipe.multi()
                    pipe.set(key, record.to_json())
                    self._index(pipe, record, previous)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue  # someone changed it first: read again

    @_guarded
    def claim(self, worker: str, lease_s: float, now: float, skip_owners: frozenset[str] = frozenset()) -> RunRecord | None:
        candidates = [*self.client.zrange(self._key("status", "queued"), 0, _CLAIM_BATCH * (1 + len(skip_owners)) - 1),
                      *self.client.zrange(self._key("status", "running"), 0, -1)]
        for raw_id in candidates:
            run_id = _text(raw_id)

            def mutate(record: RunRecord) -> bool:
                if not claimable(record, now) or record.owner in skip_owners:
                    return False
                take(record, worker, lease_s, now)
                return True

            record = self.update(run_id, mutate)
            if record is not None:
                return record
        return None

    @_guarded
    def list(self, owner: str | None, team_id: str | None, status: str | None, limit: int,
             before: str | None) -> tuple[list[RunRecord], str | None]:
        keys = [self._key("all")] if owner is None else [self._key("owner", owner)] + ([self._key("team", team_id)] if team_id else [])
        cursor = parse_cursor(before)
        merged = {r.id: r for key in keys for r in self._scan(key, cursor, status, limit + 1)}
        ordered = sorted(merged.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        page = ordered[:limit]
        return page, (cursor_of(page[-1]) if len(ordered) > limit else None)

    def _scan(self, key: str, cursor: tuple[float, str] | None, status: str | None, want: int) -> builtins.list[RunRecord]:
        """Up to ``want`` runs of one index, newest first, older than ``cursor``, with ``status``."""
        found: list[RunRecord] = []
        offset = 0
        while len(found) < want:
            chunk = cast(_Scored, self.client.zrevrangebyscore(key, cursor[0] if cursor else "+inf", "-inf", start=offset, num=200, withscores=True))
            if not chunk:
                break
            offset += len(chunk)
            ids = [run_id for run_id, score in ((_text(r), s) for r, s in chunk) if cursor is None or (score, run_id) < cursor]
            for raw in self.client.mget([self._key("run", i) for i in ids]) if ids else []:
                if raw:
                    record = RunRecord.from_json(raw)
                    if status is None or record.status == status:
                        found.append(record)
        return found[:want]

    @_guarded
    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        entry = json.dumps([kind, data], separators=(",", ":"), default=str)
        return int(self.client.rpush(self._key("events", run_id), entry))

    @_guarded
    def events(self, run_id: str, after: int, limit: int = 500) -> builtins.list[StoredEvent]:
        rows = self.client.lrange(self._key("events", run_id), after, after + limit - 1)
        found: list[StoredEvent] = []
        for offset, raw in enumerate(rows):
            kind, data = json.loads(raw)
            found.append((after + offset + 1, kind, data))
        return found

    @_guarded
    def count(self, status: str) -> int:
        return int(self.client.zcard(self._key("status", status)))

    @_guarded
    def due_approvals(self, now: float) -> builtins.list[str]:
        return [_text(r) for r in self.client.zrangebyscore(self._key("approvals"), "-inf", f"({now}")]

    @_guarded
    def purge(self, now: float, retention_s: float, max_runs: int) -> int:
        finished: list[tuple[str, float]] = []
        for status in sorted(FINISHED):
            finished += [(_text(r), s)
                         for r, s in cast(_Scored, self.client.zrange(self._key("status", status), 0, -1, withscores=True))]
        finished.sort(key=lambda item: item[1], reverse=True)
        doomed = {run_id for index, (run_id, created) in enumerate(finished) if index >= max_runs or created < now - retention_s}
        for run_id in doomed:
            record = self.get(run_id)
            pipe = self.client.pipeline()
            pipe.delete(self._key("run", run_id), self._key("events", run_id))
            pipe.zrem(self._key("all"), run_id)
            for status in STATUSES:
                pipe.zrem(self._key("status", status), run_id)
            if record is not None:
                pipe.zrem(self._key("owner", record.owner), run_id)
                if record.team_id:
                    pipe.zrem(self._key("team", record.team_id), run_id)
            pipe.execute()
        return len(doomed)

    @_guarded
    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()
