"""POST /agent/run: HTTP concerns only (auth, size limit, validation errors, SSE); the run is in
:mod:`proxy_ext.agent.service` and :mod:`proxy_ext.agent.runner`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from proxy_ext.agent import events as ev
from proxy_ext.agent import facade
from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.request import AgentRunRequest
from proxy_ext.agent.wire import event_payload, sse
from proxy_ext.exceptions import ProxyExtError, error_body
from proxy_ext.json_body import content_type_problem, parse_json_object
from proxy_ext.state import get_runtime

__all__ = ["DurableHandoff", "build_router", "error_answer", "error_response", "json_body", "openapi_components"]


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error body, as the proxy's own routes answer."""
    return JSONResponse(error_body(status, message, param), status_code=status)


def error_answer(exc: ProxyExtError) -> JSONResponse:
    """The answer to one of proxy_ext's errors (with ``Retry-After`` when the error names a wait)."""
    response = error_response(exc.status, exc.message)
    if exc.retry_after_s is not None:
        response.headers["retry-after"] = str(exc.retry_after_s)
    return response


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{loc}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid /agent/run request: " + "; ".join(parts)


async def json_body(request: Request, limit: int, max_depth: int) -> dict[str, Any]:
    """The request's JSON object: the one the request guard already parsed, else read and checked
    here the same way (guard switched off)."""
    from proxy_ext.litellm_adapter import PARSED_BODY_SCOPE_KEY

    parsed = request.scope.get(PARSED_BODY_SCOPE_KEY)
    if isinstance(parsed, dict):
        return parsed
    problem = content_type_problem(request.headers.get("content-type"))
    if problem:
        raise AgentRequestError(problem, status=415)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise AgentRequestError(f"request body exceeds the limit of {limit} bytes (proxy_ext.agent.limits.max_request_bytes)", status=413)
    return parse_json_object(bytes(body), max_depth)


def sse_frame(event: ev.RunEvent) -> bytes | None:
    """The SSE frame of a run event (None: not part of the stream); see :mod:`proxy_ext.agent.wire`."""
    payload = event_payload(event)
    return sse(*payload) if payload is not None else None


def _stream(run: facade.AgentRun) -> StreamingResponse:
    reader = run.events.reader()  # taken before the run's first step: every event is seen

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for event in reader:
                finished = finished or isinstance(event, ev.RunFinished)
                frame = sse_frame(event)
                if frame is not None:
                    yield frame
            if not finished:  # the run died without a last event
                error = run.task.exception() if run.task.done() and not run.task.cancelled() else None
                yield sse("run_failed", {"message": f"{type(error).__name__}: {error}" if error else "the run was cancelled"})
        finally:
            reader.close()
            run.cancel()  # no await here: this may run inside a cancelled scope; the task cleans up itself

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no", "x-proxy-ext-trace-id": run.trace_id})


class DurableHandoff(Protocol):
    """What ``/agent/run`` hands to durable runs (:mod:`proxy_ext.runs`, when ``proxy_ext.runs`` is on)."""

    async def background(self, payload: dict[str, Any], parsed: AgentRunRequest, caller: facade.Caller) -> Any:
        """Queue a ``background: true`` run; the response (202, or its SSE events with ``stream``)."""

    async def park(self, payload: dict[str, Any], caller: facade.Caller, result: Any) -> None:
        """Keep a foreground run that paused for approvals, so decisions can continue it."""


_SCHEMA_PREFIX = "ProxyExt"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{_SCHEMA_PREFIX}{name}"}


def openapi_components() -> dict[str, Any]:
    """JSON schemas of the /agent/run request, its envelope and the error body, named
    ``ProxyExt<Model>`` so they never collide with LiteLLM's own components."""
    from pydantic import TypeAdapter

    from proxy_ext.agent.envelope import Envelope

    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": "string"}}}}}
    components: dict[str, Any] = {f"{_SCHEMA_PREFIX}Error": error}
    for name, model, mode in (("AgentRunRequest", AgentRunRequest, "validation"), ("Envelope", Envelope, "serialization")):
        schema = TypeAdapter(model).json_schema(mode=mode, ref_template=f"#/components/schemas/{_SCHEMA_PREFIX}{{model}}")  # type: ignore[arg-type]
        components.update({f"{_SCHEMA_PREFIX}{key}": value for key, value in schema.pop("$defs", {}).items()})
        components[f"{_SCHEMA_PREFIX}{name}"] = schema
    return components


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The run's envelope (``ok`` says whether the agent answered), or its SSE events with ``stream``",
          "content": {"application/json": {"schema": _ref("Envelope")}, "text/event-stream": {"schema": {"type": "string"}}}},
    202: {"description": "A ``background: true`` run was queued (``Location``: its status)",
          "content": {"application/json": {"schema": {"type": "object", "required": ["run_id", "status"], "properties": {
              "run_id": {"type": "string"}, "status": {"type": "string"}}}}}},
    400: _error("Not a JSON object, too deep, unknown model / profile / tool, a value over an operator cap"),
    401: _error("No key, or a key the proxy does not accept"),
    403: _error("The key may not call /agent/run or a model of the run"),
    408: _error("The request body stopped arriving"),
    413: _error("The body is larger than agent.limits.max_request_bytes"),
    415: _error("The body is not application/json"),
    422: _error("The body does not match the request schema (field paths named)"),
    429: _error("Too many runs in progress (agent.limits.max_concurrent_runs)"),
    501: _error("``background: true`` while durable runs are off"),
    503: _error("The tool backend or the run store is unavailable"),
}
_RUN_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref("AgentRunRequest")}}}}


def build_router(durable: DurableHandoff | None = None) -> APIRouter:
    """The /agent/run route, behind the proxy's own key auth (``durable``: background runs and
    approvals; without it ``background: true`` answers 501)."""
    from proxy_ext import litellm_adapter

    router = APIRouter()

    @router.post("/agent/run", tags=["proxy_ext"], summary="Run the agent loop over this proxy's models",
                 responses=_RUN_RESPONSES, openapi_extra=_RUN_BODY)
    async def agent_run(request: Request, identity: Any = Depends(litellm_adapter.auth_dependency())) -> Any:
        """One agent run: the body is an ``AgentRunRequest``, the answer its envelope (or SSE events)."""
        runtime = get_runtime()
        agent = runtime.settings.agent
        try:
            payload = await json_body(request, agent.limits.max_request_bytes, runtime.settings.guard.max_json_depth)
            try:
                parsed = AgentRunRequest.model_validate(payload)
            except ValidationError as exc:
                raise AgentRequestError(_validation_message(exc), status=422) from None
            caller = facade.Caller(request.headers, request.scope.get("server"), request.url.scheme, identity, request.scope.get("client"))
            if parsed.background:
                if durable is None:
                    raise AgentRequestError("background runs are off (proxy_ext.runs.enabled: false)", status=501)
                return await durable.background(payload, parsed, caller)
            run = await facade.start(parsed, caller, stream_text=parsed.stream, runtime=runtime)
            if parsed.stream:
                return _stream(run)
            result = await run.result()
            if result.envelope.stopped_reason == "awaiting_approval" and durable is not None:
                await durable.park(payload, caller, result)
        except ProxyExtError as exc:
            return error_answer(exc)
        return JSONResponse(result.envelope.to_dict(), headers={"x-proxy-ext-trace-id": run.trace_id})

    return router
