"""Durable runs: queued in the store, executed by whichever worker has a free run slot.

Every worker runs one executor loop (:meth:`DurableRuns.ensure_started`). Each tick it renews the
leases of the runs it executes (and stops those someone cancelled), fails approvals nobody decided
in time, purges old runs, and claims queued runs — or running runs whose worker died (lease run
out) — while ``agent.limits.max_concurrent_runs`` has room. A claimed run goes through the run
facade like any other (:func:`proxy_ext.agent.facade.start`, detached from any request), continuing
from its last checkpoint; its events and checkpoints are written to the store as they happen
(:class:`~proxy_ext.runs.recorder.StoreRecorder`). The store is called off the event loop; results
the store cannot take (unreachable) are kept in memory and written when it answers again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from proxy_ext.agent import facade, service
from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.request import AgentRunRequest, resolve
from proxy_ext.agent.runner import RunResult
from proxy_ext.agent.state import Decision
from proxy_ext.exceptions import ModelRefused, ProxyExtError
from proxy_ext.runs.callers import new_record, unseal_caller
from proxy_ext.runs.envelopes import final_envelope
from proxy_ext.runs.outage import StoreUnavailable
from proxy_ext.runs.recorder import EventBell, StoreRecorder
from proxy_ext.runs.store import FINISHED, RunRecord, RunStore
from proxy_ext.runs.transitions import CANCELLED, record_decisions, request_cancel
from proxy_ext.runs.unwritten import Unwritten, refusal
from proxy_ext.state import Runtime

__all__ = ["DurableRuns", "final_envelope"]

logger = logging.getLogger("proxy_ext.runs")
PURGE_EVERY_S = 60.0


@dataclass
class _Local:
    """A run this worker executes."""

    recorder: StoreRecorder
    run: facade.AgentRun | None = None
    cancel_requested: bool = False
    renewed_at: float = 0.0


class DurableRuns:
    """The durable runs of this worker: submit, park, cancel, decide, and the executor loop."""

    def __init__(self, runtime: Runtime, store: RunStore) -> None:
        self.runtime, self.store = runtime, store
        self.settings = runtime.settings.runs
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.bell = EventBell()
        self.local: dict[str, _Local] = {}
        self._starting = 0
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._last_purge = 0.0
        self._failing = False
        self._busy: dict[str, float] = {}
        """Owners whose runs were refused a slot (their key's own limit), skipped until then."""
        self._busy_lock = threading.Lock()  # marked by the threads writing results while the tick's thread prunes
        self._refusals: set[str] = set()  # runs whose record the store refused in the tick (logged once)
        self._unwritten = Unwritten()  # results the store did not take (unreachable, or refused), written later

    # ------------------------------------------------------------------------------ entry points

    def ensure_started(self) -> None:
        """Start this worker's executor loop in the running event loop (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._loop_task is not None and not self._loop_task.done() and self._loop_task.get_loop() is loop:
            return
        self._wake = asyncio.Event()
        # A fresh context: started inside a request, the executor (and every run it starts) would
        # otherwise carry that request's context, whose client is gone as soon as it is answered.
        self._loop_task = loop.create_task(self._serve(), name="proxy_ext-runs-executor", context=contextvars.Context())

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def submit(self, payload: dict[str, Any], parsed: AgentRunRequest, caller: facade.Caller) -> RunRecord:
        """Queue a background run (4xx now for what the request itself gets wrong: what ``/agent/run``
        would refuse before it runs, unknown models and tools included)."""
        run_id = secrets.token_hex(16)
        await service.check(self.runtime, resolve(parsed, self.runtime.settings.agent), caller.headers, caller.identity, run_id,
                            caller.client)
        if await asyncio.to_thread(self.store.count, "queued") >= self.settings.max_queued_runs:
            raise AgentRequestError(f"too many background runs queued ({self.settings.max_queued_runs}, "
                                    "proxy_ext.runs.max_queued_runs); retry later", status=429)
        record = new_record(run_id, "queued", payload, caller)
        await asyncio.to_thread(self.store.create, record)
        self.ensure_started()
        self.wake()
        return record

    async def park(self, payload: dict[str, Any], caller: facade.Caller, result: RunResult) -> RunRecord:
        """Keep a foreground run that paused for approvals, so decisions can continue it."""
        envelope = result.envelope.to_dict()
        record = new_record(result.envelope.metrics.trace_id, "awaiting_approval", payload, caller)
        record.checkpoint, record.envelope = result.checkpoint, envelope
        record.pending = envelope["metrics"].get("pending_approvals") or []
        record.approval_deadline = time.time() + self.settings.approval_timeout_s

        def store() -> None:
            self.store.create(record)
            self.store.append_event(record.id, "run_paused", envelope)

        await asyncio.to_thread(store)
        self.ensure_started()
        return record

    async def cancel(self, record: RunRecord) -> RunRecord:
        """Cancel a run: at once when it is not running, else by its worker (within a tick)."""
        if record.status in FINISHED:
            raise AgentRequestError(f"run {record.id} already ended ({record.status}); nothing to cancel", status=409)

        def store() -> RunRecord | None:
            updated = self.store.update(record.id, request_cancel)
            if updated is not None and updated.status == "cancelled":
                self._ended(updated)
            return updated

        updated = await asyncio.to_thread(store)
        if updated is None:
            raise AgentRequestError(f"run {record.id} already ended; nothing to cancel", status=409)
        local = self.local.get(record.id)
        if local is not None:
            local.cancel_requested = True
            self._stop(record.id, local)
        return updated

    async def decide(self, record: RunRecord, decisions: dict[str, Decision]) -> RunRecord:
        """Record decisions on pending calls; once every pending call is decided the run continues."""
        if record.status != "awaiting_approval":
            raise AgentRequestError(f"run {record.id} is {record.status}; no tool call awaits approval", status=409)
        pending = {c.get("id") for c in record.pending or []}
        unknown = sorted(set(decisions) - pending)
        if unknown:
            raise AgentRequestError(f"call id(s) {', '.join(map(repr, unknown))} do not await approval in run {record.id}; "
                                    f"pending: {', '.join(sorted(map(str, pending))) or 'none'}")
        updated = await asyncio.to_thread(self.store.update, record.id, record_decisions(decisions, time.time()))
        if updated is None:
            raise AgentRequestError(f"run {record.id} no longer awaits approval (expired or decided)", status=409)
        self.ensure_started()
        self.wake()
        return updated

    # ------------------------------------------------------------------------------ the executor

    async def _serve(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self._tick(time.time())
                if self._failing:
                    logger.warning("proxy_ext: the run store is reachable again")
                self._failing = False
            except StoreUnavailable:
                self._failing = True  # the breaker logged it
            except Exception:
                if not self._failing:  # once per outage, not every tick
                    logger.exception("proxy_ext: durable run executor tick failed (will retry)")
                self._failing = True
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            except TimeoutError:
                pass

    async def _tick(self, now: float) -> None:
        """One round: the store's part in a thread (a slow or hung store never stalls the event loop),
        then what belongs to the loop: stopping local runs, starting the claimed ones."""
        stops, claimed = await asyncio.to_thread(self._tick_store, now, list(self.local.items()), self._starting)
        for run_id, local in stops:
            self._stop(run_id, local)
        for record in claimed:
            self._starting += 1
            asyncio.get_running_loop().create_task(self._execute(record), name=f"proxy_ext-runs-{record.id}")

    def _tick_store(self, now: float, local: list[tuple[str, _Local]], starting: int) -> tuple[list[tuple[str, _Local]], list[RunRecord]]:
        self._unwritten.retry()
        stops = self._watch_local(now, local)
        for run_id in self.store.due_approvals(now):
            try:
                self._expire(run_id, now)
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - one run the store refuses must not stop the tick
                self._refused(run_id, "the expiry of its approval", exc)
        if now - self._last_purge > PURGE_EVERY_S:
            self._last_purge = now
            self.store.purge(now, self.settings.retention_s, self.settings.max_runs)
        limit = self.runtime.settings.agent.limits.max_concurrent_runs
        with self._busy_lock:
            self._busy = {owner: until for owner, until in self._busy.items() if until > now}
            busy = frozenset(self._busy)
        claimed: list[RunRecord] = []
        try:
            while starting + len(claimed) < limit and service.run_slots.free(limit - starting - len(claimed)):  # the instance's slots
                record = self.store.claim(self.worker, self.settings.lease_s, now, busy)
                if record is None:
                    break
                if record.attempts > self.settings.max_attempts:
                    self._interrupt(record)
                    continue
                claimed.append(record)
        except StoreUnavailable:
            pass  # what was claimed still starts
        return stops, claimed

    def _watch_local(self, now: float, local_runs: list[tuple[str, _Local]]) -> list[tuple[str, _Local]]:
        """Renew the leases of this worker's runs; those to stop (cancelled elsewhere or taken over).
        A run whose record the store refuses (an error answer) is skipped: the others are renewed."""
        stops: list[tuple[str, _Local]] = []
        for run_id, local in local_runs:
            try:
                if self._watch(now, run_id, local):
                    stops.append((run_id, local))
            except StoreUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - logged once per run until it answers again
                self._refused(run_id, "its lease renewal", exc)
            else:
                self._refusals.discard(run_id)
        return stops

    def _watch(self, now: float, run_id: str, local: _Local) -> bool:
        if local.recorder.lost:
            return True
        record = self.store.get(run_id)
        if record is None or record.lease_owner != self.worker:
            local.recorder.lost = True
            return True
        if record.cancel_requested:
            local.cancel_requested = True
            return True
        if now - local.renewed_at >= self.settings.lease_s / 3:
            local.renewed_at = now
            self.store.update(run_id, lambda r: self._renew(r, now))
        return False

    def _refused(self, run_id: str, what: str, exc: Exception) -> None:
        if run_id not in self._refusals:
            self._refusals.add(run_id)
            logger.warning("proxy_ext: the run store refused %s of run %s (%s); the other runs go on", what, run_id, refusal(exc))

    def _renew(self, record: RunRecord, now: float) -> bool:
        if record.lease_owner != self.worker or record.status != "running":
            return False
        record.lease_until = now + self.settings.lease_s
        return True

    def _stop(self, run_id: str, local: _Local) -> None:  # why is in ``local``: a cancel request, or the lease is lost
        if local.run is not None:
            local.run.cancel()

    async def _execute(self, record: RunRecord) -> None:
        local = _Local(StoreRecorder(self.store, record.id, self.worker, self.bell), renewed_at=time.time())
        self.local[record.id] = local
        try:
            try:
                request = AgentRunRequest.model_validate({**record.request, "background": False})
                decisions = {k: Decision(bool(v.get("approve")), v.get("reason")) for k, v in record.decisions.items()}
                local.run = await facade.start(request, unseal_caller(record), stream_text=request.stream, runtime=self.runtime,
                                               run_id=record.id, detached=True, resume=record.checkpoint,
                                               decisions=decisions or None, consumers=(local.recorder,))
            finally:
                self._starting -= 1
            if local.cancel_requested:
                local.run.cancel()
            result = await local.run.result()
        except ModelRefused as exc:
            envelope = exc.envelope.to_dict() if exc.envelope is not None else final_envelope(record, "error", exc.message)
            await self._off(record.id, lambda: self._finish(record.id, "failed", envelope, local))
        except ProxyExtError as exc:
            await self._off(record.id, lambda error=exc: self._stopped(record, local, error))  # type: ignore[misc]
        except asyncio.CancelledError:
            raise  # this worker is shutting down: the lease runs out and another worker (or a restart) continues
        except Exception as exc:  # a bug must not leave the run running forever
            logger.exception("proxy_ext: durable run %s failed", record.id)
            envelope = final_envelope(record, "error", f"internal error: {type(exc).__name__}: {exc}", local.recorder.checkpoint)
            await self._off(record.id, lambda: self._finish(record.id, "failed", envelope, local))
        else:
            await self._off(record.id, lambda: self._done(record.id, result, local))
        finally:
            self.local.pop(record.id, None)
            self.wake()

    async def _off(self, run_id: str, write: Callable[[], None]) -> None:
        """A run's result, written off the event loop (kept in memory while the store cannot take it)."""
        await asyncio.to_thread(self._unwritten.write, run_id, write)

    def _stopped(self, record: RunRecord, local: _Local, exc: ProxyExtError) -> None:
        if local.recorder.lost:
            return  # another worker has it
        if local.cancel_requested:
            self._finish(record.id, "cancelled", final_envelope(record, "cancelled", CANCELLED, local.recorder.checkpoint), local)
        elif exc.status == 429 and local.run is None:  # no slot after all (a foreground run was first): back in the queue
            with self._busy_lock:
                self._busy[record.owner] = time.time() + max(1.0, self.settings.poll_interval_s)
            self.store.update(record.id, lambda r: self._requeue(r))
        else:
            self._finish(record.id, "failed", final_envelope(record, "error", exc.message, local.recorder.checkpoint), local)

    def _requeue(self, record: RunRecord) -> bool:
        if record.lease_owner != self.worker or record.status != "running":
            return False
        record.status, record.lease_owner, record.lease_until = "queued", None, 0.0
        record.attempts -= 1
        return True

    def _done(self, run_id: str, result: RunResult, local: _Local) -> None:
        envelope = result.envelope.to_dict()
        if envelope["stopped_reason"] != "awaiting_approval":
            self._finish(run_id, "completed" if envelope["ok"] else "failed", envelope, local)
            return

        def mutate(r: RunRecord) -> bool:
            if r.lease_owner != self.worker or r.status != "running":
                return False
            r.lease_owner, r.lease_until, r.checkpoint = None, 0.0, result.checkpoint
            if r.cancel_requested:  # cancelled (200) as it paused: the cancel wins, no decision will come
                r.status, r.envelope, r.cancel_requested = "cancelled", final_envelope(r, "cancelled", CANCELLED), False
                return True
            r.status, r.envelope = "awaiting_approval", envelope
            r.pending, r.decisions = envelope["metrics"].get("pending_approvals") or [], {}
            r.approval_deadline = time.time() + self.settings.approval_timeout_s
            return True

        updated = self.store.update(run_id, mutate)
        if updated is not None and updated.status == "cancelled":
            self._ended(updated)
        elif updated is not None:
            self.bell.ring(run_id)

    def _finish(self, run_id: str, status: str, envelope: dict[str, Any], local: _Local | None) -> None:
        def mutate(r: RunRecord) -> bool:
            if r.status in FINISHED or (local is not None and r.lease_owner != self.worker):
                return False
            r.status, r.envelope, r.pending, r.cancel_requested = status, envelope, None, False
            r.lease_owner, r.lease_until = None, 0.0
            return True

        if local is not None:
            local.recorder.flush()  # the run's events stored during an outage go first
        updated = self.store.update(run_id, mutate)
        if updated is not None:
            if local is None or not local.recorder.finished:
                self.store.append_event(run_id, "run_completed", envelope)
            self.bell.ring(run_id)

    def _ended(self, record: RunRecord) -> None:
        if record.envelope is not None:
            self.store.append_event(record.id, "run_completed", record.envelope)
        self.bell.ring(record.id)

    def _expire(self, run_id: str, now: float) -> None:
        def mutate(r: RunRecord) -> bool:
            if r.status != "awaiting_approval" or (r.approval_deadline or now) >= now:
                return False
            count = len(r.pending or [])
            error = f"no decision on {count} pending tool call(s) within {self.settings.approval_timeout_s:g} s (proxy_ext.runs.approval_timeout_s)"
            r.status, r.envelope, r.pending = "failed", final_envelope(r, "approval_expired", error), None
            return True

        updated = self.store.update(run_id, mutate)
        if updated is not None:
            self._ended(updated)

    def _interrupt(self, record: RunRecord) -> None:
        error = f"the run's worker stopped {record.attempts - 1} time(s) (proxy_ext.runs.max_attempts: {self.settings.max_attempts})"
        self._finish(record.id, "interrupted", final_envelope(record, "interrupted", error), None)
