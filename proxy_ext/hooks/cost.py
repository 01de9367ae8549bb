"""Cost-augmented JSON: ``usage.cost`` (USD) and ``usage.cost_details`` in every JSON body of
/v1/chat/completions, /v1/completions, /v1/embeddings and /v1/responses, streaming or not.

- Non-streaming: the post-call success hook returns a copy of the response whose ``usage`` carries
  the cost LiteLLM computed for the call (the ``x-litellm-response-cost`` header's figure).
- Streaming: the streaming iterator hook prices the chunk that carries ``usage`` (the client asked
  ``stream_options.include_usage``) or the Responses ``response.completed`` event, and sends a copy
  of it with the cost. All other chunks pass through as they are.

LiteLLM's own objects are never mutated (copies go out), so its spend logs see stock responses.
A failure never fails the call: the response goes out without cost and the error is logged once.

Agent profiles served as models (``mini-agent/<profile>``): the run's own model calls are separate
proxy calls, priced and logged against the caller's key as they happen; LiteLLM prices the outer
call itself at 0 (the model is not in its price map). The provider leaves the run's summed cost as
a note on the request (:func:`note_agent_run_cost`), and the client sees ``usage.cost`` = that sum
plus LiteLLM's figure for the outer call — spend logs are untouched, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Cost", "CostHooks", "RUN_COST_NOTE", "build_cost_hooks", "note_agent_run_cost"]

logger = logging.getLogger("proxy_ext.cost")

FAULT_ENV = "PROXY_EXT_TEST_COST_FAULT"
"""Test-only: when set to 1, every price lookup raises (exercises the failure path in a real proxy)."""

Pricer = Callable[[Any, "dict[str, Any] | None"], "tuple[float | None, float | None, float | None]"]

RUN_COST_NOTE = "proxy_ext.agent_run_cost"
"""Request note (:mod:`proxy_ext.request_context`) holding the :class:`Cost` of the agent run that
answered the request."""


@dataclass(frozen=True)
class Cost:
    """The USD cost of one call."""

    total: float
    """What LiteLLM computed for the call (``x-litellm-response-cost``)."""
    input: float | None = None
    """Prompt side (cache read/creation included)."""
    output: float | None = None
    """Completion side."""

    def details(self) -> dict[str, float] | None:
        """``usage.cost_details``, or None when LiteLLM gave no split."""
        if self.input is None and self.output is None:
            return None
        return {"input_cost": self.input or 0.0, "output_cost": self.output or 0.0}


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` / ``obj.name`` or None, cheaply: this runs for every streamed chunk, and
    ``getattr`` on a pydantic model for a missing name costs microseconds (it raises inside)."""
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, "__dict__", _EMPTY).get(name)
    if value is None:
        extra = getattr(obj, "__pydantic_extra__", None)  # LiteLLM keeps a chunk's usage here
        value = extra.get(name) if extra else None
    return value


_EMPTY: dict[str, Any] = {}


def _cost(priced: tuple[float | None, float | None, float | None]) -> Cost | None:
    total, input_cost, output_cost = priced
    return None if total is None else Cost(total, input_cost, output_cost)


def note_agent_run_cost(total: float, input_cost: float | None, output_cost: float | None) -> None:
    """Record the summed cost of the agent run answering the current request (the run's model calls
    are already in the spend logs): the response's ``usage.cost`` will include it."""
    from proxy_ext.request_context import set_request_note

    set_request_note(RUN_COST_NOTE, Cost(total, input_cost, output_cost))


def _noted_run_cost() -> Cost | None:
    from proxy_ext.request_context import request_note

    noted = request_note(RUN_COST_NOTE)
    return noted if isinstance(noted, Cost) else None


def _plus(run: Cost | None, call: Cost | None) -> Cost | None:
    """The client's figure: an agent run's cost plus LiteLLM's own figure for the outer call."""
    if run is None or call is None:
        return run or call
    total = run.total + call.total
    if run.details() is None or (call.details() is None and call.total):
        return Cost(total)
    return Cost(total, (run.input or 0.0) + (call.input or 0.0), (run.output or 0.0) + (call.output or 0.0))


def _with_cost_usage(usage: Any, cost: Cost) -> Any:
    """A copy of a usage object (pydantic model or dict) with ``cost`` and ``cost_details`` set."""
    update: dict[str, Any] = {"cost": cost.total}
    details = cost.details()
    if details is not None:
        update["cost_details"] = details
    if isinstance(usage, dict):
        return {**usage, **update}
    # model_copy(update=…) skips assignment validation (a few µs per field); ``cost`` is a declared
    # field of LiteLLM's Usage, and both keys are extras on ResponseAPIUsage.
    return usage.model_copy(update=update)


def _with_cost(holder: Any, cost: Cost) -> Any:
    """A shallow copy of ``holder`` (a response, chunk or dict) whose ``usage`` carries ``cost``."""
    if isinstance(holder, dict):
        return {**holder, "usage": _with_cost_usage(holder.get("usage") or {}, cost)}
    # The copy keeps _hidden_params: the proxy builds its response headers from them.
    return holder.model_copy(update={"usage": _with_cost_usage(_field(holder, "usage"), cost)})


class CostHooks:
    """The cost behaviour behind ``ProxyExtension``'s hooks (one instance per proxy)."""

    def __init__(self, *, enabled: bool, kind_of: Callable[[Any], str | None], call_cost: Pricer, chunk_cost: Pricer,
                 run_cost: Callable[[], Cost | None] = _noted_run_cost) -> None:
        self.enabled = enabled
        self._kind_of = kind_of
        self._call_cost = call_cost
        self._chunk_cost = chunk_cost
        self._run_cost = run_cost
        self._failures_logged: set[str] = set()

    def _failed(self, where: str, exc: BaseException) -> None:
        # Logged once per kind of failure (with its traceback), not per request or per chunk: a
        # broken price lookup would otherwise flood the proxy log.
        key = f"{where}:{type(exc).__name__}"
        if key in self._failures_logged:
            logger.debug("proxy_ext cost %s failed again: %s", where, exc)
            return
        self._failures_logged.add(key)
        logger.error("proxy_ext cost: %s failed; the response goes out without usage.cost (logged once)", where, exc_info=exc)

    async def post_call_success(self, data: dict[str, Any], response: Any) -> Any:
        """The response with cost in its usage, or None to leave it as it is."""
        if not self.enabled:
            return None
        try:
            if self._kind_of(response) is None or getattr(response, "usage", None) is None:
                return None
            cost = _plus(self._run_cost(), _cost(self._call_cost(response, data)))
            return None if cost is None else _with_cost(response, cost)
        except Exception as exc:  # never fail the call over cost
            self._failed("post_call_success", exc)
            return None

    def _priced_chunk(self, chunk: Any, request_data: dict[str, Any]) -> Any:
        if _field(chunk, "usage") is not None:
            cost = _plus(self._run_cost(), _cost(self._chunk_cost(chunk, request_data)))
            return chunk if cost is None else _with_cost(chunk, cost)
        if _field(chunk, "type") == "response.completed" and _field(chunk.response, "usage") is not None:
            cost = _plus(self._run_cost(), _cost(self._chunk_cost(chunk, request_data)))
            if cost is None:
                return chunk
            return chunk.model_copy(update={"response": _with_cost(chunk.response, cost)})
        return chunk

    def stream(self, response: AsyncIterator[Any], request_data: dict[str, Any]) -> AsyncIterator[Any]:
        """The stream to send: ``response`` itself when cost is off, else a pass-through that adds
        cost to the chunk that carries usage (no extra generator layer when off)."""
        if not self.enabled:
            return response
        return self._priced_stream(response, request_data)

    async def _priced_stream(self, response: AsyncIterator[Any], request_data: dict[str, Any]) -> AsyncIterator[Any]:
        pricing = True
        async for chunk in response:  # upstream errors propagate untouched
            if pricing and not isinstance(chunk, (bytes, str)):
                try:
                    chunk = self._priced_chunk(chunk, request_data)
                except Exception as exc:  # never fail the stream over cost; stop pricing this one
                    pricing = False
                    self._failed("stream", exc)
            yield chunk


def _faulty(*_: Any) -> Any:
    raise RuntimeError(f"injected price lookup failure ({FAULT_ENV}=1)")


def build_cost_hooks(enabled: bool) -> CostHooks:
    """The hooks wired to LiteLLM through the LiteLLM adapter."""
    from proxy_ext import litellm_adapter as adapter

    if os.environ.get(FAULT_ENV) == "1":
        return CostHooks(enabled=enabled, kind_of=adapter.cost_response_kind, call_cost=_faulty, chunk_cost=_faulty)
    return CostHooks(enabled=enabled, kind_of=adapter.cost_response_kind, call_cost=adapter.call_cost, chunk_cost=adapter.stream_chunk_cost)
