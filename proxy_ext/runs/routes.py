"""``/agent/runs``: list, status, events (SSE with ``Last-Event-ID``), cancel and approvals of durable
runs. Only the key that created a run (its team, and proxy admins) sees it; anyone else gets 404."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from proxy_ext import litellm_adapter as adapter
from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent import facade
from proxy_ext.agent.request import AgentRunRequest
from proxy_ext.agent.routes import error_answer, json_body
from proxy_ext.agent.state import Decision
from proxy_ext.agent.wire import sse
from proxy_ext.exceptions import ProxyExtError
from proxy_ext.runs import DurableRuns, durable_runs
from proxy_ext.runs.outage import StoreUnavailable
from proxy_ext.runs.store import CURSOR_PATTERN, FINISHED, STATUSES, RunRecord, parse_cursor
from proxy_ext.state import get_runtime

__all__ = ["ApprovalsRequest", "RunsHandoff", "build_router", "event_stream", "status_body"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")
_STREAM_ENDS = FINISHED | {"awaiting_approval"}
MAX_PAGE = 500


class ApprovalDecision(BaseModel):
    """A decision on one pending tool call."""

    model_config = ConfigDict(extra="forbid")
    call_id: StrictStr = Field(min_length=1, max_length=256)
    """The pending call's ``id``."""
    approve: StrictBool
    """``true`` runs the call; ``false`` tells the model it was denied."""
    reason: StrictStr | None = Field(default=None, max_length=4000)
    """Shown to the model when the call is denied."""


class ApprovalsRequest(BaseModel):
    """Body of ``POST /agent/runs/{id}/approvals``."""

    model_config = ConfigDict(extra="forbid")
    decisions: list[ApprovalDecision] = Field(min_length=1, max_length=256)


_DECISION_SCHEMA = {"type": "object", "required": ["call_id", "approve"], "additionalProperties": False, "properties": {
    "call_id": {"type": "string", "minLength": 1, "maxLength": 256}, "approve": {"type": "boolean"},
    "reason": {"type": ["string", "null"], "maxLength": 4000}}}
_APPROVALS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["decisions"], "additionalProperties": False,
    "properties": {"decisions": {"type": "array", "minItems": 1, "maxItems": 256, "items": _DECISION_SCHEMA}}}}}}}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProxyExtError"}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A malformed value (event number, call ids that are not pending)", **_ERROR},
    401: {"description": "No key, or a key the proxy does not accept", **_ERROR},
    404: {"description": "No such run, or not the caller's", **_ERROR},
    409: {"description": "The run is not in a state that allows this (ended; not awaiting approval)", **_ERROR},
    408: {"description": "The request body stopped arriving", **_ERROR},
    413: {"description": "The approvals body is larger than 64 KiB", **_ERROR},
    415: {"description": "The approvals body is not application/json", **_ERROR},
    422: {"description": "The query or body does not match the schema", **_ERROR},
    503: {"description": "The run store is unavailable", **_ERROR},
}
_EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The run's events as Server-Sent Events (``id:`` is the event number)",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
_EVENTS_QUERY = {"parameters": [
    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
     "description": "The last event number seen: events after it are sent"},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
     "description": "As Last-Event-ID, for clients that cannot set headers"}]}
_LIST_QUERY = {"parameters": [
    {"name": "status", "in": "query", "required": False, "schema": {"type": "string", "enum": list(STATUSES)}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "before", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": CURSOR_PATTERN}, "description": "next_before of the previous page"}]}


def _not_found(run_id: str) -> AgentRequestError:
    return AgentRequestError(f"no run {run_id!r} (or not yours)", status=404)


async def _owned(runs: DurableRuns, run_id: str, identity: Any) -> RunRecord:
    """The run when the caller may see it; 404 otherwise (never says which)."""
    if not _RUN_ID.fullmatch(run_id):
        raise _not_found(run_id)
    record = await asyncio.to_thread(runs.store.get, run_id)
    if record is None:
        raise _not_found(run_id)
    owner, team_id, admin = adapter.identity_owner(identity)
    if admin or record.owner == owner or (team_id is not None and record.team_id == team_id):
        return record
    raise _not_found(run_id)


def status_body(record: RunRecord) -> dict[str, Any]:
    """``GET /agent/runs/{id}``: status, and the envelope once the run ended or paused."""
    body = record.summary()
    if record.status == "awaiting_approval":
        body["pending_approvals"] = record.pending or []
        body["approval_expires_at"] = record.approval_deadline
    if record.envelope is not None and (record.status in _STREAM_ENDS):
        body["envelope"] = record.envelope
    if record.cancel_requested and record.status == "running":
        body["cancel_requested"] = True
    return body


def event_stream(record: RunRecord, after: int) -> StreamingResponse:
    """The run's events after sequence number ``after`` as SSE (``id:`` = sequence number), live
    until the run ends or pauses for approval."""
    runs = durable_runs(get_runtime())

    def _read(run_id: str, seq: int) -> tuple[RunRecord | None, list[Any]]:
        current = runs.store.get(run_id)  # status first: when it is final, the events read next are all there are
        return current, runs.store.events(run_id, seq)

    async def frames() -> AsyncIterator[bytes]:
        seq, quiet_since = after, time.monotonic()
        while True:
            try:
                current, batch = await asyncio.to_thread(_read, record.id, seq)
            except StoreUnavailable:  # the stream stays open (keep-alives) until the store answers again
                current, batch = record, []
            for number, kind, data in batch:
                seq = number
                yield sse(kind, data, number)
            if batch:
                quiet_since = time.monotonic()
                continue
            if current is None or current.status in _STREAM_ENDS:
                return
            if time.monotonic() - quiet_since >= runs.settings.stream_keepalive_s:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await runs.bell.wait(record.id, runs.settings.poll_interval_s)

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no", "x-proxy-ext-run-id": record.id})


class RunsHandoff:
    """``/agent/run``'s way into durable runs (:class:`proxy_ext.agent.routes.DurableHandoff`)."""

    async def background(self, payload: dict[str, Any], parsed: AgentRunRequest, caller: facade.Caller) -> Any:
        record = await durable_runs(get_runtime()).submit(payload, parsed, caller)
        if parsed.stream:
            return event_stream(record, 0)
        return JSONResponse({"run_id": record.id, "status": record.status}, status_code=202,
                            headers={"location": f"/agent/runs/{record.id}", "x-proxy-ext-run-id": record.id})

    async def park(self, payload: dict[str, Any], caller: facade.Caller, result: Any) -> None:
        await durable_runs(get_runtime()).park(payload, caller, result)


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:  # "²" is a digit to isdigit(), not to int()
        raise AgentRequestError(f"Last-Event-ID / after must be a non-negative event number, not {raw[:40]!r}")
    return int(raw)


def _page(request: Request) -> tuple[str | None, int, str | None]:
    query = request.query_params
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise AgentRequestError(f"status must be one of {', '.join(STATUSES)}, not {status[:40]!r}", status=422)
    raw = query.get("limit") or "50"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_PAGE:  # int() refuses 4,300+ digits
        raise AgentRequestError(f"limit must be an integer from 1 to {MAX_PAGE}, not {raw[:40]!r}", status=422)
    before = query.get("before") or None
    if before is not None and parse_cursor(before) is None:
        raise AgentRequestError(f"before must be the next_before of a previous page, not {before[:40]!r}")
    return status, int(raw), before


def _decisions(payload: dict[str, Any]) -> dict[str, Decision]:
    try:
        parsed = ApprovalsRequest.model_validate(payload)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise AgentRequestError("invalid approvals: " + "; ".join(parts) +
                                ' (send {"decisions": [{"call_id": "...", "approve": true}]})', status=422) from None
    decisions: dict[str, Decision] = {}
    for d in parsed.decisions:
        if d.call_id in decisions:  # two answers for one call: which one the person meant is unknowable
            raise AgentRequestError(f"call {d.call_id[:80]!r} is decided twice in this request; send one decision per call_id", status=422)
        decisions[d.call_id] = Decision(d.approve, d.reason)
    return decisions


def build_router() -> APIRouter:
    """The ``/agent/runs`` routes, behind the proxy's own key auth."""
    router = APIRouter(tags=["proxy_ext"], responses=_RESPONSES)
    auth = Depends(adapter.auth_dependency())

    def runs() -> DurableRuns:
        runtime = get_runtime()
        found = durable_runs(runtime)
        found.ensure_started()
        return found

    @router.get("/agent/runs", summary="List your durable agent runs (newest first)", openapi_extra=_LIST_QUERY)
    async def list_runs(request: Request, identity: Any = auth) -> Any:
        try:
            status, limit, before = _page(request)
            owner, team_id, admin = adapter.identity_owner(identity)
            records, next_before = await asyncio.to_thread(runs().store.list, None if admin else owner, team_id, status, limit, before)
        except ProxyExtError as exc:
            return error_answer(exc)
        return {"runs": [r.summary() for r in records], "next_before": next_before}

    @router.get("/agent/runs/{run_id}", summary="A durable run's status (and envelope once it ended)")
    async def run_status(run_id: str, identity: Any = auth) -> Any:
        try:
            return status_body(await _owned(runs(), run_id, identity))
        except ProxyExtError as exc:
            return error_answer(exc)

    @router.get("/agent/runs/{run_id}/events", summary="A run's events as SSE, from the start or after Last-Event-ID",
                response_class=StreamingResponse, responses=_EVENTS_RESPONSES, openapi_extra=_EVENTS_QUERY)
    async def run_events(run_id: str, request: Request, identity: Any = auth) -> Any:
        try:
            return event_stream(await _owned(runs(), run_id, identity), _after(request))
        except ProxyExtError as exc:
            return error_answer(exc)

    @router.post("/agent/runs/{run_id}/cancel", summary="Cancel a durable run")
    async def run_cancel(run_id: str, identity: Any = auth) -> Any:
        try:
            service = runs()
            record = await service.cancel(await _owned(service, run_id, identity))
        except ProxyExtError as exc:
            return error_answer(exc)
        return {"run_id": record.id, "status": record.status, "cancel_requested": record.status == "running"}

    @router.post("/agent/runs/{run_id}/approvals", summary="Approve or deny a paused run's pending tool calls",
                 openapi_extra=_APPROVALS_BODY)
    async def run_approvals(run_id: str, request: Request, identity: Any = auth) -> Any:
        runtime = get_runtime()
        try:
            service = runs()
            record = await _owned(service, run_id, identity)
            payload = await json_body(request, 65_536, runtime.settings.guard.max_json_depth)
            record = await service.decide(record, _decisions(payload))
        except ProxyExtError as exc:
            return error_answer(exc)
        return JSONResponse(status_body(record))

    return router
