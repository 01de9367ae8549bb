"""POST /agent/run: HTTP concerns only (auth, size limit, validation errors, SSE); the run is in
:mod:`proxy_ext.agent.service` and :mod:`proxy_ext.agent.runner`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from proxy_ext.agent import service
from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.request import AgentRunRequest, resolve
from proxy_ext.state import get_runtime

__all__ = ["build_router", "error_response"]


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    """An OpenAI-style error body, as the proxy's own routes answer."""
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 413: "request_too_large",
            429: "rate_limit_error", 503: "service_unavailable"}.get(status, "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": str(status)}}, status_code=status)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{loc}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid /agent/run request: " + "; ".join(parts)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise AgentRequestError(f"request body of {declared} bytes exceeds the limit of {limit} bytes (proxy_ext.agent.limits.max_request_bytes)", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads without a length: stop reading at the limit
            raise AgentRequestError(f"request body exceeds the limit of {limit} bytes (proxy_ext.agent.limits.max_request_bytes)", status=413)
    return bytes(body)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n".encode()


def _stream(prepared: service.PreparedRun, limit: int) -> StreamingResponse:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def emit(event: str, data: dict[str, Any]) -> None:
        await queue.put(_sse(event, data))

    async def answer_delta(text: str) -> None:
        await queue.put(_sse("answer_delta", {"text": text}))

    async def produce() -> None:
        try:
            outcome = await service.execute(prepared, emit, on_text=answer_delta)
            await queue.put(_sse("run_completed", outcome.envelope.to_dict()))
        except Exception as exc:  # never leave the client hanging
            await queue.put(_sse("run_failed", {"message": f"{type(exc).__name__}: {exc}"}))
        finally:
            await queue.put(None)

    async def events() -> AsyncIterator[bytes]:
        # The slot is taken here, not before the response: a stream that never starts (the client
        # left first) then never holds one.
        try:
            service.run_slots.acquire(limit)
        except AgentRequestError as exc:
            yield _sse("run_failed", {"message": exc.message, "status": exc.status})
            return
        task = asyncio.create_task(produce())
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            # The client went away (or the stream ended): cancel the run and its tool calls.
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            service.run_slots.release()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no", "x-proxy-ext-trace-id": prepared.trace_id})


_CREDENTIAL_HEADERS = ("authorization", "x-litellm-api-key", "api-key", "x-api-key", "x-goog-api-key")


async def require_credentials(request: Request) -> None:
    """401 when no key is sent at all (LiteLLM's own auth answers that case with a bare 500 when no
    database is configured); every other decision is the proxy's ``user_api_key_auth``."""
    if not any(request.headers.get(name) for name in _CREDENTIAL_HEADERS):
        raise HTTPException(status_code=401, detail="no API key: send Authorization: Bearer <proxy key>")


def build_router() -> APIRouter:
    """The /agent/run route, behind the proxy's own key auth."""
    from proxy_ext import glue

    router = APIRouter()

    @router.post("/agent/run", tags=["proxy_ext"], dependencies=[Depends(require_credentials), Depends(glue.user_api_key_auth)])
    async def agent_run(request: Request) -> Any:
        runtime = get_runtime()
        agent = runtime.settings.agent
        try:
            raw = await _read_body(request, agent.limits.max_request_bytes)
            try:
                payload = json.loads(raw or b"null")
            except ValueError as exc:
                raise AgentRequestError(f"request body is not valid JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise AgentRequestError("request body must be a JSON object with messages or input")
            try:
                parsed = AgentRunRequest.model_validate(payload)
            except ValidationError as exc:
                raise AgentRequestError(_validation_message(exc), status=422) from None
            spec = resolve(parsed, agent)
            base_url = service.proxy_base_url(request.scope.get("server"), request.url.scheme, agent.proxy_base_url)
            prepared = await service.prepare(runtime, spec, request.headers, base_url)
            if spec.stream:
                service.run_slots.check(agent.limits.max_concurrent_runs)
                return _stream(prepared, agent.limits.max_concurrent_runs)
            with service.run_slots.held(agent.limits.max_concurrent_runs):
                outcome = await service.execute(prepared)
        except AgentRequestError as exc:
            return error_response(exc.status, exc.message)
        if outcome.refused_status:
            return error_response(outcome.refused_status, outcome.envelope.metrics.error or "model refused for this key")
        return JSONResponse(outcome.envelope.to_dict(), headers={"x-proxy-ext-trace-id": prepared.trace_id})

    return router
