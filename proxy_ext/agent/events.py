"""The typed events of an agent run: the one record of what happened in it.

The loop (:mod:`proxy_ext.agent.runner`) publishes them in order on the run's :class:`EventStream`;
every consumer reads the same stream — SSE for ``/agent/run`` streams, the answer text of
``mini-agent`` streams, the JSONL trace record, Prometheus and OpenTelemetry. Times are
``time.time()`` seconds (wall clock, for traces and spans) next to a monotonic duration.

Adding a consumer: a plain function ``(event) -> None`` passed to :meth:`EventStream.subscribe`
runs synchronously as each event is published (keep it cheap; a failure is logged, never fatal);
an async reader takes :meth:`EventStream.reader` (before the run starts, to see every event).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from proxy_ext.agent.envelope import Envelope

__all__ = [
    "AnswerDelta", "ApprovalRequested", "Checkpointed", "Escalated", "EventStream", "FellBack", "ModelTurnFinished", "ModelTurnStarted", "RunEvent",
    "RunFinished", "RunStarted", "ToolCallFinished", "ToolCallStarted",
]

logger = logging.getLogger("proxy_ext.agent")


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class RunStarted:
    """The run began (after validation; its slot is held)."""

    trace_id: str
    models: list[str]
    backend: str
    tools: list[str]
    profile: str | None = None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ModelTurnStarted:
    """A model call of the run is about to be made."""

    model: str
    iteration: int
    """1-based number of this turn in the run (the turn that fails keeps the number)."""
    with_tools: bool = True
    messages: list[dict[str, Any]] | None = None
    """The conversation as sent to the model (read it, never change it: the run owns it)."""
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ModelTurnFinished:
    """A model call ended: an assistant message, or an error (``ok`` false)."""

    model: str
    iteration: int
    ok: bool
    duration_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    message: dict[str, Any] | None = None
    status: int = 0
    """HTTP status of a failed call (0: no answer)."""
    error: str | None = None
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``tool_calls``, ``length`` …) when its answer said so."""
    at: float = field(default_factory=_now)

    @property
    def tool_calls(self) -> list[str]:
        """Names of the tools the model asked for."""
        return [c["function"]["name"] for c in (self.message or {}).get("tool_calls") or []]


@dataclass(frozen=True)
class AnswerDelta:
    """Answer text as a streamed model writes it (streamed runs only)."""

    text: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ToolCallStarted:
    """A tool call the model asked for is about to run."""

    id: str | None
    name: str
    arguments: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ToolCallFinished:
    """A tool call ended; ``content`` is the text the model sees."""

    id: str | None
    name: str
    ok: bool
    content: str
    duration_ms: float
    error: str | None = None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class Escalated:
    """The run moved up the model ladder."""

    from_model: str
    to_model: str | None
    reason: str
    detail: str | None = None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class FellBack:
    """The ladder is exhausted: one plain completion without tools is tried."""

    model: str
    reason: str | None
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ApprovalRequested:
    """Tool calls that need a person's decision: the run stops until they are decided."""

    calls: list[dict[str, Any]]
    """The pending calls (OpenAI tool calls: id, function name and arguments)."""
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class Checkpointed:
    """The run's state after a model turn or a tool result: enough to continue it elsewhere."""

    state: dict[str, Any]
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class RunFinished:
    """The run ended; ``envelope`` is its answer (also when it failed), None when it was cancelled
    (its client hung up) before it could answer."""

    envelope: "Envelope | None"
    at: float = field(default_factory=_now)


RunEvent = Union[RunStarted, ModelTurnStarted, ModelTurnFinished, AnswerDelta, ToolCallStarted, ToolCallFinished,
                 Escalated, FellBack, ApprovalRequested, Checkpointed, RunFinished]
"""Any event of a run."""

Subscriber = Callable[[RunEvent], None]


class EventStream:
    """One run's events, in order, to every consumer.

    Synchronous subscribers see each event as it is published; each :meth:`reader` gets a queue
    of every event from the moment it was created (ending after :class:`RunFinished` or
    :meth:`close`).
    """

    def __init__(self, subscribers: list[Subscriber] | None = None) -> None:
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._queues: list[asyncio.Queue[RunEvent | None]] = []
        self.closed = False

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(event)`` for every event published from now on."""
        self._subscribers.append(subscriber)

    def publish(self, event: RunEvent) -> None:
        """Hand ``event`` to every consumer (a failing subscriber is logged, never fatal)."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a consumer bug must not break the run
                logger.exception("run event consumer %r failed on %s", subscriber, type(event).__name__)
        for queue in self._queues:
            queue.put_nowait(event)
        if isinstance(event, RunFinished):
            self.close()

    def close(self) -> None:
        """No more events (readers finish)."""
        if not self.closed:
            self.closed = True
            for queue in self._queues:
                queue.put_nowait(None)

    def reader(self) -> "_Reader":
        """An async iterator over every event published from this call on, until the run ends
        (registered at once: call it before the run starts to see all of them)."""
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        else:
            self._queues.append(queue)
        return _Reader(queue, self)


class _Reader:
    def __init__(self, queue: "asyncio.Queue[RunEvent | None]", stream: EventStream) -> None:
        self.queue = queue
        self.stream = stream

    def __aiter__(self) -> "_Reader":
        return self

    async def __anext__(self) -> RunEvent:
        event = await self.queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stop receiving (the run goes on)."""
        if self.queue in self.stream._queues:
            self.stream._queues.remove(self.queue)
