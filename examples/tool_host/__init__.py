"""A small reference tool host for proxy_ext's ``http`` tool backend (FastAPI).

Start it with ``python -m examples.tool_host --port 8790`` and point the proxy at it::

    proxy_ext:
      tools:
        http: {base_url: "http://127.0.0.1:8790", headers: {X-Tool-Token: os.environ/TOOL_HOST_TOKEN}}

Protocol (docs/tools.md): ``GET /tools`` lists the tools with JSON schemas; ``POST /invoke``
``{"name", "arguments"}`` answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ...}``.
With ``--token`` (or ``TOOL_HOST_TOKEN``) every request must carry ``X-Tool-Token: <token>``.

Tools: ``echo``, ``add``, ``word_count``, ``sleep`` (a slow tool), ``flaky`` (answers 429 with
``Retry-After`` a given number of times per key), ``fail`` (a tool error) and ``whoami`` (which of
the caller's headers arrived; the Authorization value only as a SHA-256 fingerprint).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = ["TOOLS", "create_app"]


def _obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


TOOLS: list[dict[str, Any]] = [
    {"name": "echo", "description": "Return the given text unchanged.",
     "parameters": _obj({"text": {"type": "string"}}, ["text"])},
    {"name": "add", "description": "Add two integers.",
     "parameters": _obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"])},
    {"name": "word_count", "description": "Count the words of a text.",
     "parameters": _obj({"text": {"type": "string"}}, ["text"])},
    {"name": "sleep", "description": "Wait the given number of seconds (at most 30), then answer.",
     "parameters": _obj({"seconds": {"type": "number", "minimum": 0, "maximum": 30}}, ["seconds"])},
    {"name": "flaky", "description": "Rate-limited: answers HTTP 429 `failures` times per key, then succeeds.",
     "parameters": _obj({"key": {"type": "string"}, "failures": {"type": "integer", "minimum": 0},
                         "retry_after": {"type": "string"}}, ["key", "failures"])},
    {"name": "fail", "description": "Always fails with the given message.",
     "parameters": _obj({"message": {"type": "string"}}, ["message"])},
    {"name": "whoami", "description": "Which request headers reached the tool host.",
     "parameters": _obj({}, [])},
]


class RateLimited(Exception):
    def __init__(self, retry_after: str) -> None:
        self.retry_after = retry_after


def create_app(token: str | None = None) -> FastAPI:
    """The tool host application; ``token`` makes ``X-Tool-Token`` mandatory."""
    app = FastAPI(title="proxy_ext reference tool host")
    flaky_seen: Counter[str] = Counter()

    async def echo(args: dict[str, Any], request: Request) -> Any:
        return args["text"]

    async def add(args: dict[str, Any], request: Request) -> Any:
        return args["a"] + args["b"]

    async def word_count(args: dict[str, Any], request: Request) -> Any:
        return len(args["text"].split())

    async def sleep(args: dict[str, Any], request: Request) -> Any:
        await asyncio.sleep(float(args["seconds"]))
        return {"slept": args["seconds"]}

    async def flaky(args: dict[str, Any], request: Request) -> Any:
        flaky_seen[args["key"]] += 1
        if flaky_seen[args["key"]] <= args["failures"]:
            raise RateLimited(args.get("retry_after", "0"))
        return {"attempts": flaky_seen[args["key"]]}

    async def fail(args: dict[str, Any], request: Request) -> Any:
        raise ValueError(args["message"])

    async def whoami(args: dict[str, Any], request: Request) -> Any:
        auth = request.headers.get("authorization")
        return {
            "authorization_sha256": hashlib.sha256(auth.encode()).hexdigest()[:16] if auth else None,
            "headers": sorted(k for k in request.headers.keys() if k.startswith("x-") and k != "x-tool-token"),
            "x_request_id": request.headers.get("x-request-id"),
        }

    handlers: dict[str, Callable[[dict[str, Any], Request], Awaitable[Any]]] = {
        "echo": echo, "add": add, "word_count": word_count, "sleep": sleep, "flaky": flaky, "fail": fail, "whoami": whoami,
    }
    schemas = {tool["name"]: tool["parameters"] for tool in TOOLS}

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        if token is not None and not hmac.compare_digest(request.headers.get("x-tool-token", ""), token):
            return JSONResponse({"detail": "missing or wrong X-Tool-Token"}, status_code=401)
        return await call_next(request)

    @app.get("/tools")
    async def list_tools() -> dict[str, Any]:
        return {"tools": TOOLS}

    @app.post("/invoke")
    async def invoke(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"ok": False, "error": "body is not JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return JSONResponse({"ok": False, "error": 'expected {"name": ..., "arguments": {...}}'}, status_code=400)
        name, args = body["name"], body.get("arguments") or {}
        handler = handlers.get(name)
        if handler is None:
            return {"ok": False, "error": f"unknown tool {name!r}"}
        problem = _check(schemas[name], args)
        if problem:
            return {"ok": False, "error": problem}
        try:
            return {"ok": True, "result": await handler(args, request)}
        except RateLimited as exc:
            return JSONResponse({"ok": False, "error": "rate limited"}, status_code=429, headers={"Retry-After": exc.retry_after})
        except Exception as exc:  # a failing tool is a result, not a server error
            return {"ok": False, "error": str(exc)}

    return app


def _check(schema: dict[str, Any], args: Any) -> str | None:
    """Minimal argument check (the proxy validates with jsonschema before calling; hosts should too)."""
    if not isinstance(args, dict):
        return "arguments must be an object"
    props = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in args:
            return f"missing argument {key!r}"
    types = {"string": str, "integer": int, "number": (int, float), "object": dict}
    for key, value in args.items():
        if key not in props:
            return f"unknown argument {key!r}"
        expected = types.get(props[key].get("type"))
        if expected and (not isinstance(value, expected) or isinstance(value, bool)):
            return f"argument {key!r} must be of type {props[key]['type']}"
    return None
