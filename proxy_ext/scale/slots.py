"""Run slots: how many agent runs may be in progress, per instance, per key and across instances.

:class:`RunSlots` is the one counter every run start goes through (``proxy_ext.agent.service.run_slots``).
It is synchronous and called on the event loop thread; each call costs microseconds:

- one worker: in-process counts;
- ``--num_workers`` > 1: :class:`SharedCounts`, a small JSON file under ``fcntl.flock`` holding each
  worker's counts by pid (and start time). Entries of dead workers are dropped when they would
  make a request fail, so a worker killed with ``kill -9`` gives its slots back;
- with ``scale.global_max_concurrent_runs``: a Redis lease per run as well (:mod:`proxy_ext.scale.leases`).

Keys are held as a short SHA-256 of the caller's API key, never the key itself.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy_ext.exceptions import ProxyExtError
from proxy_ext.exceptions import RequestError as AgentRequestError
from proxy_ext.scale import instance_dir, is_alive, multi_worker, process_start

__all__ = ["LocalCounts", "RunSlots", "SharedCounts", "Slot", "owner_of"]

logger = logging.getLogger("proxy_ext.scale")

INSTANCE_LIMIT = "proxy_ext.agent.limits.max_concurrent_runs"
KEY_LIMIT = "proxy_ext.scale.max_concurrent_runs_per_key"
_KEY_HEADERS = ("authorization", "x-litellm-api-key", "api-key", "x-api-key")


def owner_of(headers: Mapping[str, str]) -> str | None:
    """A short hash of the caller's API key (None: no key in ``headers``)."""
    lower = {k.lower(): v for k, v in headers.items()}
    for name in _KEY_HEADERS:
        value = (lower.get(name) or "").strip()
        if value:
            token = value.split(" ", 1)[1].strip() if value.lower().startswith("bearer ") else value
            return hashlib.sha256(token.encode()).hexdigest()[:24]
    return None


def _too_many(limit: int) -> AgentRequestError:
    return AgentRequestError(f"too many agent runs in progress ({limit}, {INSTANCE_LIMIT}); retry shortly", status=429)


def _key_busy(limit: int) -> AgentRequestError:
    return AgentRequestError(f"this API key already has {limit} agent runs in progress ({KEY_LIMIT}); retry shortly", status=429)


class LocalCounts:
    """Counts of this process only (one worker: the process is the instance)."""

    def __init__(self) -> None:
        self.total = 0
        self.by_owner: dict[str, int] = {}

    def problem(self, limit: int, owner: str | None, per_key: int | None) -> AgentRequestError | None:
        if self.total >= limit:
            return _too_many(limit)
        if per_key is not None and owner is not None and self.by_owner.get(owner, 0) >= per_key:
            return _key_busy(per_key)
        return None

    def take(self, limit: int, owner: str | None, per_key: int | None) -> None:
        problem = self.problem(limit, owner, per_key)
        if problem is not None:
            raise problem
        self.total += 1
        if owner is not None:
            self.by_owner[owner] = self.by_owner.get(owner, 0) + 1

    def give(self, owner: str | None) -> None:
        self.total = max(0, self.total - 1)
        if owner is not None:
            left = self.by_owner.get(owner, 0) - 1
            if left > 0:
                self.by_owner[owner] = left
            else:
                self.by_owner.pop(owner, None)


class SharedCounts:
    """Counts of every worker of the instance, in one locked file: ``{pid: {"start", "runs": {owner: n}}}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.pid = os.getpid()
        self.start = process_start(self.pid)
        self._lock = threading.Lock()  # flock is per open file: serialise this process's threads too
        self._file: tuple[int, int] | None = None

    def _fd(self) -> int:
        # One open file per process (a forked child opens its own: flock belongs to the open file).
        if self._file is None or self._file[0] != os.getpid():
            self._file = (os.getpid(), os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        return self._file[1]

    def _update(self, change: Callable[[dict[str, Any]], bool]) -> None:
        with self._lock:
            fd = self._fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, 1 << 20, 0)
                try:
                    state = json.loads(raw) if raw else {}
                except ValueError:
                    state = {}  # a torn file cannot happen under the lock; start afresh if it did
                if change(state):
                    data = json.dumps(state, separators=(",", ":")).encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _totals(state: dict[str, Any], owner: str | None) -> tuple[int, int]:
        total = mine = 0
        for entry in state.values():
            runs = entry.get("runs", {})
            total += sum(runs.values())
            if owner is not None:
                mine += runs.get(owner, 0)
        return total, mine

    def _check(self, state: dict[str, Any], limit: int, owner: str | None, per_key: int | None) -> AgentRequestError | None:
        for attempt in (0, 1):
            total, mine = self._totals(state, owner)
            problem = _too_many(limit) if total >= limit else _key_busy(per_key) if (
                per_key is not None and owner is not None and mine >= per_key) else None
            if problem is None or attempt:
                return problem
            self._reclaim(state)  # only when a request would fail: the fast path reads no /proc
        return None

    def _reclaim(self, state: dict[str, Any]) -> None:
        for pid_text in list(state):
            entry = state[pid_text]
            if int(pid_text) != self.pid and not is_alive(int(pid_text), entry.get("start")):
                logger.warning("proxy_ext: worker %s is gone; its %d run slot(s) are free again", pid_text, sum(entry.get("runs", {}).values()))
                del state[pid_text]

    def problem(self, limit: int, owner: str | None, per_key: int | None) -> AgentRequestError | None:
        found: list[AgentRequestError | None] = [None]

        def look(state: dict[str, Any]) -> bool:
            before = len(state)
            found[0] = self._check(state, limit, owner, per_key)
            return len(state) != before

        self._update(look)
        return found[0]

    def take(self, limit: int, owner: str | None, per_key: int | None) -> None:
        found: list[AgentRequestError | None] = [None]

        def add(state: dict[str, Any]) -> bool:
            found[0] = self._check(state, limit, owner, per_key)
            if found[0] is not None:
                return True
            entry = state.setdefault(str(self.pid), {"start": self.start, "runs": {}})
            entry["runs"][owner or ""] = entry["runs"].get(owner or "", 0) + 1
            return True

        self._update(add)
        if found[0] is not None:
            raise found[0]

    def give(self, owner: str | None) -> None:
        def remove(state: dict[str, Any]) -> bool:
            runs = state.get(str(self.pid), {}).get("runs", {})
            left = runs.get(owner or "", 0) - 1
            if left > 0:
                runs[owner or ""] = left
            else:
                runs.pop(owner or "", None)
            if not runs:
                state.pop(str(self.pid), None)
            return True

        self._update(remove)

    def snapshot(self) -> dict[str, Any]:
        """The file's current state (for tests and doctor)."""
        seen: dict[str, Any] = {}
        self._update(lambda state: bool(seen.update(state)))
        return seen


@dataclass(frozen=True)
class Slot:
    """One run's slot: whose it is and its Redis lease (None: no global limit)."""

    owner: str | None = None
    lease: str | None = None


class RunSlots:
    """Run slots of this instance (``agent.limits.max_concurrent_runs``), per key
    (``scale.max_concurrent_runs_per_key``) and across instances (``scale.global_max_concurrent_runs``).

    ``active`` counts this worker's runs (the ``proxy_ext_agent_runs_in_progress`` gauge adds the
    workers up). The scope is chosen from the settings on first use; :meth:`configure` sets it.
    """

    def __init__(self) -> None:
        self.active = 0
        self.on_change: Callable[[], None] | None = None
        self._counts: LocalCounts | SharedCounts | None = None
        self._leases: Any = None
        self._per_key: int | None = None
        self._held: list[Slot] = []
        self._choosing = threading.Lock()

    def configure(self, *, shared_path: str | os.PathLike[str] | None = None, per_key: int | None = None, leases: Any = None) -> None:
        """Choose the scope: ``shared_path`` (a state file shared by the instance's workers; None:
        this process), the per-key limit and a :class:`~proxy_ext.scale.leases.RedisLeases`."""
        self._counts = SharedCounts(shared_path) if shared_path else LocalCounts()
        self._per_key = per_key
        self._leases = leases

    def _ensure(self) -> LocalCounts | SharedCounts:
        if self._counts is None:
            with self._choosing:  # the durable-run tick checks from a thread while runs take slots on the loop
                if self._counts is None:
                    self._choose()
        assert self._counts is not None
        return self._counts

    def _choose(self) -> None:
        from proxy_ext.state import get_runtime

        scale = get_runtime().settings.scale
        shared = instance_dir(scale.state_dir) / "run_slots.json" if multi_worker() else None
        leases = None
        if scale.global_max_concurrent_runs is not None:
            from proxy_ext.scale.leases import RedisLeases

            leases = RedisLeases.from_settings(scale)
        self.configure(shared_path=shared, per_key=scale.max_concurrent_runs_per_key, leases=leases)

    def check(self, limit: int, *, owner: str | None = None) -> None:
        """429 when no slot is free for ``owner`` (nothing is taken)."""
        problem = self._ensure().problem(limit, owner, self._per_key)
        if problem is not None:
            raise problem
        if self._leases is not None:
            self._leases.check(owner, self._per_key)

    def free(self, limit: int, *, owner: str | None = None) -> bool:
        """True when :meth:`acquire` would find a slot now."""
        try:
            self.check(limit, owner=owner)
        except ProxyExtError:  # full (429), or the global limit's Redis is unreachable (503)
            return False
        return True

    def acquire(self, limit: int, *, owner: str | None = None) -> Slot:
        """Take a slot (429 when none is free, 503 when the global limit's Redis is unreachable)."""
        counts = self._ensure()
        counts.take(limit, owner, self._per_key)
        lease = None
        if self._leases is not None:
            try:
                lease = self._leases.take(owner, self._per_key)
            except BaseException:
                counts.give(owner)
                raise
        slot = Slot(owner, lease)
        self._held.append(slot)
        self.active += 1
        self._changed()
        return slot

    def release(self, slot: Slot | None = None) -> None:
        """Give back ``slot`` (None: a slot taken without an owner, for callers that keep none)."""
        if slot is None:
            slot = next((s for s in reversed(self._held) if s.owner is None), self._held[-1] if self._held else None)
        if slot is None:
            return
        try:
            self._held.remove(slot)
        except ValueError:
            return  # released twice: nothing more to give back
        self.active -= 1
        try:
            if self._counts is not None:
                self._counts.give(slot.owner)
        finally:
            if slot.lease is not None and self._leases is not None:
                self._leases.give(slot.lease, slot.owner)
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a metrics problem never fails a run
                logger.exception("proxy_ext: run slot gauge update failed")
