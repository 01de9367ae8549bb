"""A fake OpenAI-compatible upstream: a real HTTP server on loopback with scripted replies.

Replies are chosen per request by the upstream model name (the part after ``openai/`` in a proxy
``litellm_params.model``). Each model has a script — a list of :class:`Reply` steps consumed in
order; the last step repeats once the script is exhausted. A model with no script echoes the last
user message. Every request is recorded (body and headers) for assertions.

    upstream.script("tool-then-answer",
                    Reply(tool_calls=[call("add", {"a": 1, "b": 2})]),
                    Reply(text="3"))
    upstream.script("flaky", Reply(status=500), Reply(text="ok"))
    upstream.script("slow", Reply(text="late", latency_s=0.2))

Served routes: ``/v1/chat/completions`` (JSON and SSE with a usage chunk), ``/v1/completions``,
``/v1/embeddings``, ``/v1/responses`` (JSON and SSE), ``/v1/models``.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncio
import itertools
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

__all__ = ["FakeUpstream", "Reply", "call", "free_port"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """An OpenAI tool call for :attr:`Reply.tool_calls`."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id or f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": {"name": name, "arguments": args}}


@dataclass
class Reply:
    """One scripted upstream answer."""

    text: str | None = None
    """Assistant content (None with tool_calls: content null)."""
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls to return (see :func:`call`)."""
    status: int = 200
    """HTTP status; non-2xx returns an OpenAI-style error body."""
    error_message: str = "injected upstream error"
    """Message of the error body for non-2xx statuses."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. ``Retry-After``)."""
    latency_s: float = 0.0
    """Delay before the response starts."""
    chunk_delay_s: float = 0.0
    """Delay between SSE chunks when streaming."""
    prompt_tokens: int = 11
    """Usage reported."""
    completion_tokens: int = 7
    """Usage reported."""
    chunks: int | None = None
    """Split the streamed text into this many chunks (default: one per word)."""
    tool_call_chunks: int | None = None
    """Stream each tool call as OpenAI does: a delta with its id and name, then its arguments in
    this many pieces (default: each call whole in one delta)."""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _split(text: str, parts: int | None) -> list[str]:
    if not text:
        return []
    if parts is None:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeUpstream:
    """The server; start with :meth:`start` (or use as a context manager)."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[Reply]] = {}
        self._responders: dict[str, Callable[[dict[str, Any]], Reply]] = {}
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ scripting API
    @property
    def base_url(self) -> str:
        """OpenAI base URL of this upstream (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *replies: Reply) -> None:
        """Set the replies for ``model`` (replaces an earlier script and rewinds it)."""
        with self._lock:
            self._scripts[model] = list(replies)
            self._positions[model] = 0

    def respond(self, model: str, responder: Callable[[dict[str, Any]], Reply]) -> None:
        """Choose each reply for ``model`` from the request body (for concurrent multi-turn scripts)."""
        with self._lock:
            self._responders[model] = responder

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        """Recorded requests whose body named ``model``."""
        return [r for r in self.requests if r["body"].get("model") == model]

    def _next_reply(self, model: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            responder = self._responders.get(model)
            script = self._scripts.get(model)
        if responder is not None:
            return responder(body)
        with self._lock:
            if not script:
                return Reply(text=_last_user_text(body.get("messages", [])) or "ok")
            pos = self._positions.get(model, 0)
            self._positions[model] = pos + 1
            return script[min(pos, len(script) - 1)]

    # ------------------------------------------------------------------ server
    def start(self) -> "FakeUpstream":
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-upstream", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ routes
    def _build_app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.requests.append({"path": request.url.path, "body": body, "headers": dict(request.headers), "at": time.time()})
            return body

        def error(reply: Reply) -> JSONResponse:
            kind = {429: "rate_limit_error", 401: "authentication_error"}.get(reply.status, "server_error")
            return JSONResponse(
                {"error": {"message": reply.error_message, "type": kind, "code": str(reply.status)}},
                status_code=reply.status,
                headers=reply.headers,
            )

        def usage(reply: Reply) -> dict[str, int]:
            return {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": m, "object": "model"} for m in self._scripts]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await record(request)
            model = body.get("model", "")
            reply = self._next_reply(model, body)
            if reply.latency_s:
                await asyncio.sleep(reply.latency_s)
            if reply.status >= 400:
                return error(reply)
            cid = f"chatcmpl-fake{next(self._ids)}"
            created = int(time.time())
            finish = "tool_calls" if reply.tool_calls else "stop"
            if not body.get("stream"):
                message: dict[str, Any] = {"role": "assistant", "content": reply.text}
                if reply.tool_calls:
                    message["tool_calls"] = reply.tool_calls
                return JSONResponse(
                    {
                        "id": cid,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": usage(reply),
                    },
                    headers=reply.headers,
                )
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            async def events() -> Any:
                def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
                    data = {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                    }
                    return f"data: {json.dumps(data)}\n\n"

                yield chunk({"role": "assistant", "content": ""})
                for piece in _split(reply.text or "", reply.chunks):
                    if reply.chunk_delay_s:
                        await asyncio.sleep(reply.chunk_delay_s)
                    yield chunk({"content": piece})
                for index, tool_call in enumerate(reply.tool_calls or []):
                    if reply.tool_call_chunks is None:
                        yield chunk({"tool_calls": [{"index": index, **tool_call}]})
                        continue
                    head = {**tool_call, "function": {"name": tool_call["function"]["name"], "arguments": ""}}
                    yield chunk({"tool_calls": [{"index": index, **head}]})
                    for piece in _split(tool_call["function"]["arguments"], reply.tool_call_chunks):
                        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                yield chunk({}, finish)
                if include_usage:
                    data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage(reply)}
                    yield f"data: {json.dumps(data)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream", headers=reply.headers)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Any:
            body = await record(request)
            model = body.get("model", "")
            prompt = body.get("prompt", "")
            reply = self._next_reply(model, {"messages": [{"role": "user", "content": prompt if isinstance(prompt, str) else " ".join(prompt)}]})
            if reply.latency_s:
                await asyncio.sleep(reply.latency_s)
            if reply.status >= 400:
                return error(reply)
            cid = f"cmpl-fake{next(self._ids)}"
            created = int(time.time())
            if not body.get("stream"):
                return {
                    "id": cid, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": 0, "text": reply.text or "", "finish_reason": "stop", "logprobs": None}],
                    "usage": usage(reply),
                }
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            async def events() -> Any:
                for piece in _split(reply.text or "", reply.chunks):
                    data = {"id": cid, "object": "text_completion", "created": created, "model": model,
                            "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}
                    yield f"data: {json.dumps(data)}\n\n"
                data = {"id": cid, "object": "text_completion", "created": created, "model": model,
                        "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]}
                if include_usage:
                    data["usage"] = usage(reply)
                yield f"data: {json.dumps(data)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Any:
            body = await record(request)
            reply = self._next_reply(body.get("model", ""), {})
            if reply.status >= 400:
                return error(reply)
            inputs = body.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            return {
                "object": "list",
                "model": body.get("model"),
                "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, float(i)]} for i in range(len(inputs))],
                "usage": {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens},
            }

        @app.post("/v1/responses")
        async def responses(request: Request) -> Any:
            body = await record(request)
            model = body.get("model", "")
            raw_input = body.get("input")
            text_in = raw_input if isinstance(raw_input, str) else json.dumps(raw_input)
            reply = self._next_reply(model, {"messages": [{"role": "user", "content": text_in}]})
            if reply.latency_s:
                await asyncio.sleep(reply.latency_s)
            if reply.status >= 400:
                return error(reply)
            rid = f"resp_fake{next(self._ids)}"
            text = reply.text or ""
            resp_usage = {
                "input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0},
            }
            item = {"id": f"msg_{rid}", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
            full = {"id": rid, "object": "response", "created_at": int(time.time()), "status": "completed", "model": model,
                    "output": [item], "usage": resp_usage, "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
            if not body.get("stream"):
                return full

            async def events() -> Any:
                seq = itertools.count()

                def event(kind: str, **data: Any) -> str:
                    return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': next(seq), **data})}\n\n"

                pending = {**full, "status": "in_progress", "output": [], "usage": None}
                yield event("response.created", response=pending)
                yield event("response.in_progress", response=pending)
                yield event("response.output_item.added", output_index=0,
                            item={**item, "status": "in_progress", "content": []})
                yield event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
                            part={"type": "output_text", "text": "", "annotations": []})
                for piece in _split(text, reply.chunks):
                    yield event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=piece)
                yield event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text)
                yield event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                            part={"type": "output_text", "text": text, "annotations": []})
                yield event("response.output_item.done", output_index=0, item=item)
                yield event("response.completed", response=full)

            return StreamingResponse(events(), media_type="text/event-stream")

        return app
