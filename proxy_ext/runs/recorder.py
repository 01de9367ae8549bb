"""The durable run's event consumer: every wire event and checkpoint of a run goes to the store as
it happens, and local event streams of the run are woken at once (others poll)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from proxy_ext.agent import events as ev
from proxy_ext.agent.wire import event_payload
from proxy_ext.runs import unwritten
from proxy_ext.runs.outage import StoreUnavailable
from proxy_ext.runs.store import RunRecord, RunStore

__all__ = ["EventBell", "StoreRecorder"]

logger = logging.getLogger("proxy_ext.runs")


class EventBell:
    """Wakes this worker's event streams of a run when new events of it were stored (rung from the
    event loop or from the threads that call the store)."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def ring(self, run_id: str) -> None:
        waiters = list(self._waiting.get(run_id, ()))
        if not waiters:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a thread: asyncio events are set on their loop
            if self._loop is not None and not self._loop.is_closed():
                for waiter in waiters:
                    self._loop.call_soon_threadsafe(waiter.set)
            return
        for waiter in waiters:
            waiter.set()

    async def wait(self, run_id: str, timeout_s: float) -> None:
        """Until the run's bell rings or ``timeout_s`` passed (events stored elsewhere are polled)."""
        waiter = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._waiting.setdefault(run_id, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            waiting = self._waiting.get(run_id)
            if waiting is not None:
                waiting.discard(waiter)
                if not waiting:
                    del self._waiting[run_id]


class StoreRecorder:
    """Subscribed to one run's :class:`~proxy_ext.agent.events.EventStream` by the executor.

    Writes are synchronous, in the order of the run: a checkpoint is stored before the loop makes
    its next model or tool call. A checkpoint is only written while this worker holds the run's
    lease; when another worker took the run over (this one stalled), :attr:`lost` is set and the
    executor stops the run here.
    """

    def __init__(self, store: RunStore, run_id: str, worker: str, bell: EventBell) -> None:
        self.store, self.run_id, self.worker, self.bell = store, run_id, worker, bell
        self.checkpoint: dict[str, Any] | None = None
        """The run's last checkpoint seen (also when the store could not take it)."""
        self.lost = False
        """Another worker holds the run now."""
        self.finished = False
        """A final envelope (completed or paused) was recorded (or is in :attr:`unsent`)."""
        self.unsent: list[tuple[str, dict[str, Any]]] = []
        """Events the store could not take (unreachable), stored in order as soon as it answers."""
        self.refused = 0
        """Flushes in a row the store refused (an error answer)."""

    def __call__(self, event: ev.RunEvent) -> None:
        if isinstance(event, ev.Checkpointed):
            self.checkpoint = event.state
            self._save(event.state)
            return
        if isinstance(event, ev.RunFinished) and event.envelope is None:
            return  # cancelled here: the executor records why (cancel request, worker stopping)
        payload = event_payload(event)
        if payload is None or self.lost:
            return
        self.unsent.append(payload)
        if isinstance(event, ev.RunFinished):
            self.finished = True
        try:
            self.flush()
        except StoreUnavailable:
            return  # kept: the run goes on, its events are stored when the store answers (flush)
        except Exception as exc:  # noqa: BLE001 - refused: kept for the next flush (bounded, see flush)
            logger.warning("proxy_ext: the run store refused an event of run %s (%s); kept for the next try",
                           self.run_id, unwritten.refusal(exc))
            return
        self.bell.ring(self.run_id)

    def flush(self) -> None:
        """Store the events kept during an outage (raises :class:`StoreUnavailable` while it lasts).
        Events the store refuses (an error answer, e.g. out of memory) are kept for the next flush
        and raise; after :data:`~proxy_ext.runs.unwritten.WRITE_TRIES` refused flushes in a row
        they are dropped (logged), so the run's result can still be stored."""
        while self.unsent:
            try:
                self.store.append_event(self.run_id, *self.unsent[0])
            except StoreUnavailable:
                raise
            except Exception as exc:
                self.refused += 1
                if self.refused < unwritten.WRITE_TRIES:
                    raise
                logger.error("proxy_ext: the run store refused the events of run %s %d times (%s); %d event(s) dropped",
                             self.run_id, self.refused, unwritten.refusal(exc), len(self.unsent))
                self.unsent.clear()
            else:
                self.unsent.pop(0)
            self.refused = 0

    def _save(self, state: dict[str, Any]) -> None:
        def mutate(record: RunRecord) -> bool:
            if record.lease_owner != self.worker or record.status != "running":
                return False
            record.checkpoint = state
            return True

        try:
            updated = self.store.update(self.run_id, mutate)
        except StoreUnavailable:
            return  # kept in self.checkpoint: a later checkpoint, or the run's final envelope, carries it
        if updated is None and not self.lost:
            self.lost = True
            logger.warning("proxy_ext: run %s is no longer this worker's (lease lost); stopping it here", self.run_id)
