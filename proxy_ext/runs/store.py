"""Where durable runs live: the :class:`RunRecord` and the :class:`RunStore` interface, with the
embedded SQLite store (one file, shared safely by the workers of one box).

A store is small and synchronous: every operation is one short transaction (SQLite in WAL mode, or
a few Redis commands), fast enough to run on the event loop, and ordered with the run itself — a
checkpoint is on disk before the next model or tool call starts, so a worker that dies never makes
another repeat a completed call.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ACTIVE", "CURSOR_PATTERN", "FINISHED", "STATUSES", "RunRecord", "RunStore", "SqliteRunStore", "StoredEvent", "claimable", "cursor_of", "parse_cursor", "take"]

STATUSES = ("queued", "running", "awaiting_approval", "completed", "failed", "cancelled", "interrupted")
ACTIVE = frozenset({"queued", "running"})
"""Statuses a worker may claim (``running``: only once its lease ran out)."""
FINISHED = frozenset({"completed", "failed", "cancelled", "interrupted"})
"""Statuses a run never leaves."""

StoredEvent = tuple[int, str, dict[str, Any]]
"""(sequence number from 1, SSE event name, data)."""


@dataclass
class RunRecord:
    """One durable run, as stored."""

    id: str
    """Unguessable run id (128 random bits, hex); also the run's ``trace_id``."""
    owner: str
    """Hash identifying the key that created the run."""
    team_id: str | None
    """The creator's team (members of the team may read and steer the run)."""
    status: str
    """One of :data:`STATUSES`."""
    request: dict[str, Any]
    """The ``/agent/run`` body."""
    caller: str
    """The caller's headers and identity, sealed with the proxy's key (the run's model calls are made as them)."""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    checkpoint: dict[str, Any] | None = None
    """The run loop's last saved state (:meth:`proxy_ext.agent.state.RunState.checkpoint`)."""
    envelope: dict[str, Any] | None = None
    """The envelope, once the run finished or paused."""
    pending: list[dict[str, Any]] | None = None
    """Tool calls awaiting a decision."""
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Decisions by call id (``{"approve": bool, "reason": str | None}``)."""
    approval_deadline: float | None = None
    """When a pending approval expires (epoch seconds)."""
    attempts: int = 0
    """Starts so far (the first and every continuation after a worker died)."""
    lease_owner: str | None = None
    """The worker executing the run."""
    lease_until: float = 0.0
    """Until when that worker's claim holds (epoch seconds); renewed while it runs."""
    cancel_requested: bool = False
    """Someone asked to cancel the running run; its worker stops it."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunRecord":
        return cls(**json.loads(text))

    def summary(self) -> dict[str, Any]:
        """What ``GET /agent/runs`` lists for this run."""
        body: dict[str, Any] = {"run_id": self.id, "status": self.status, "created_at": self.created_at,
                                "updated_at": self.updated_at, "attempts": self.attempts}
        if self.request.get("profile"):
            body["profile"] = self.request["profile"]
        return body


Mutation = Callable[[RunRecord], bool]
"""Changes a record in place; returns False to leave it as it was."""


class RunStore(ABC):
    """Storage of runs and their events, shared by every worker that serves ``/agent/runs``."""

    @abstractmethod
    def create(self, record: RunRecord) -> None:
        """Store a new run."""

    @abstractmethod
    def get(self, run_id: str) -> RunRecord | None:
        """The run, or None."""

    @abstractmethod
    def update(self, run_id: str, mutate: Mutation) -> RunRecord | None:
        """Apply ``mutate`` atomically; the record after it (None: no such run, or left unchanged)."""

    @abstractmethod
    def claim(self, worker: str, lease_s: float, now: float, skip_owners: frozenset[str] = frozenset()) -> RunRecord | None:
        """Take the oldest queued run, or a running one whose lease ran out, for ``worker`` (none of
        ``skip_owners``: keys at their own concurrent-run limit must not block everyone else's runs)."""

    @abstractmethod
    def list(self, owner: str | None, team_id: str | None, status: str | None, limit: int,
             before: str | None) -> tuple[list[RunRecord], str | None]:
        """Runs newest first (``owner`` None: everyone's), and the cursor of the next page."""

    @abstractmethod
    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        """Store one event; its sequence number (1, 2, ... per run)."""

    @abstractmethod
    def events(self, run_id: str, after: int, limit: int = 500) -> builtins.list[StoredEvent]:
        """Events with a sequence number above ``after``, in order."""

    @abstractmethod
    def count(self, status: str) -> int:
        """How many runs have ``status``."""

    @abstractmethod
    def due_approvals(self, now: float) -> builtins.list[str]:
        """Ids of runs whose pending approval has expired."""

    @abstractmethod
    def purge(self, now: float, retention_s: float, max_runs: int) -> int:
        """Delete finished runs older than ``retention_s`` or beyond the newest ``max_runs``; how many."""

    def ping(self) -> None:  # noqa: B027 (optional: a no-op unless the store has a connection)
        """Raise when the store cannot be reached."""

    def close(self) -> None:  # noqa: B027 (optional: a no-op unless the store holds connections)
        """Release connections."""


def claimable(record: RunRecord, now: float) -> bool:
    return record.status == "queued" or (record.status == "running" and record.lease_until < now)


def take(record: RunRecord, worker: str, lease_s: float, now: float) -> None:
    record.status, record.lease_owner, record.lease_until = "running", worker, now + lease_s
    record.attempts += 1
    record.updated_at = now


_STAMP = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
"""What run ids look like (``secrets.token_hex(16)``)."""
CURSOR_PATTERN = f"^{_STAMP.pattern}:{_RUN_ID.pattern}$"
"""A ``next_before``, as a regular expression (for the route's OpenAPI document)."""


def cursor_of(record: RunRecord) -> str:
    return f"{record.created_at:.6f}:{record.id}"


def parse_cursor(before: str | None) -> tuple[float, str] | None:
    """The page position of a ``next_before`` (None: none, or not a cursor — only a run id and the
    ASCII decimals :func:`cursor_of` writes, so always finite: float() also reads ``nan``, which Redis refuses as a score, and ``١``, ``1_0``, ``1e3``)."""
    if not before:
        return None
    stamp, _, run_id = before.partition(":")
    if not (_RUN_ID.fullmatch(run_id) and _STAMP.fullmatch(stamp)):
        return None
    return float(stamp), run_id


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, team_id TEXT, status TEXT NOT NULL,
    created_at REAL NOT NULL, lease_until REAL NOT NULL, approval_deadline REAL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, created_at);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
CREATE TABLE IF NOT EXISTS run_events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq));
"""


class SqliteRunStore(RunStore):
    """Runs in one SQLite file (WAL mode): every worker on the box opens the same file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # one connection per store; sqlite3 objects are not thread-safe
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (WAL); an OS crash may lose the last commits
        with self._tx():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db, self._lock)

    def _write(self, record: RunRecord) -> None:
        self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (record.id, record.owner, record.team_id, record.status, record.created_at, record.lease_until,
                          record.approval_deadline if record.status == "awaiting_approval" else None, record.to_json()))

    def _read(self, run_id: str) -> RunRecord | None:
        row = self._db.execute("SELECT doc FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_json(row[0]) if row else None

    def create(self, record: RunRecord) -> None:
        with self._tx():
            self._write(record)

    def get(self, run_id: str) -> RunRecord | None:
        with self._lock:
            return self._read(run_id)

    def update(self, run_id: str, mutate: Mutation) -> RunRecord | None:
        with self._tx():
            record = self._read(run_id)
            if record is None or not mutate(record):
                return None
            record.updated_at = time.time()
            self._write(record)
            return record

    def claim(self, worker: str, lease_s: float, now: float, skip_owners: frozenset[str] = frozenset()) -> RunRecord | None:
        skipped = sorted(skip_owners)
        not_these = f" AND owner NOT IN ({', '.join('?' * len(skipped))})" if skipped else ""
        with self._tx():
            row = self._db.execute(
                "SELECT doc FROM runs WHERE (status = 'queued' OR (status = 'running' AND lease_until < ?))"
                f"{not_these} ORDER BY created_at LIMIT 1", (now, *skipped)).fetchone()
            if row is None:
                return None
            record = RunRecord.from_json(row[0])
            take(record, worker, lease_s, now)
            self._write(record)
            return record

    def list(self, owner: str | None, team_id: str | None, status: str | None, limit: int,
             before: str | None) -> tuple[list[RunRecord], str | None]:
        where: list[str] = []
        args: list[Any] = []
        if owner is not None:
            where.append("(owner = ? OR (team_id IS NOT NULL AND team_id = ?))")
            args += [owner, team_id or "\0"]
        if status is not None:
            where.append("status = ?")
            args.append(status)
        cursor = parse_cursor(before)
        if cursor is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [cursor[0], cursor[0], cursor[1]]
        sql = "SELECT doc FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        records = [RunRecord.from_json(r[0]) for r in rows[:limit]]
        return records, (cursor_of(records[-1]) if len(rows) > limit else None)

    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        with self._tx():
            (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?", (run_id,)).fetchone()
            self._db.execute("INSERT INTO run_events VALUES (?, ?, ?, ?)",
                             (run_id, last + 1, kind, json.dumps(data, separators=(",", ":"), default=str)))
            return int(last) + 1

    def events(self, run_id: str, after: int, limit: int = 500) -> builtins.list[StoredEvent]:
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, data FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                                    (run_id, after, limit)).fetchall()
        return [(int(seq), kind, json.loads(data)) for seq, kind, data in rows]

    def count(self, status: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0])

    def due_approvals(self, now: float) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM runs WHERE status = 'awaiting_approval' AND approval_deadline < ?", (now,)).fetchall()
        return [r[0] for r in rows]

    def purge(self, now: float, retention_s: float, max_runs: int) -> int:
        finished = "('completed', 'failed', 'cancelled', 'interrupted')"
        with self._tx():
            old = [r[0] for r in self._db.execute(f"SELECT id FROM runs WHERE status IN {finished} AND created_at < ?",
                                                  (now - retention_s,))]
            old += [r[0] for r in self._db.execute(
                f"SELECT id FROM runs WHERE status IN {finished} ORDER BY created_at DESC LIMIT -1 OFFSET ?", (max_runs,))]
            for run_id in set(old):
                self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                self._db.execute("DELETE FROM run_events WHERE run_id = ?", (run_id,))
            return len(set(old))

    def ping(self) -> None:  # noqa: B027 (optional: a no-op unless the store has a connection)
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    def close(self) -> None:  # noqa: B027 (optional: a no-op unless the store holds connections)
        with self._lock:
            self._db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken up front, so concurrent workers wait
    (up to the connection timeout) instead of failing on an upgrade."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, kind: Any, *_: Any) -> None:
        try:
            self.db.execute("ROLLBACK" if kind else "COMMIT")
        finally:
            self.lock.release()
