"""HttpToolBackend: lists and invokes the tools of one configured tool host.

Protocol (docs/tools.md): ``GET {base_url}/tools`` → ``{"tools": [{name, description, parameters}]}``;
``POST {base_url}/invoke`` ``{"name", "arguments"}`` → ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``. Every failure — host down, 429 after the last retry, timeout, bad
response — becomes a ``ToolResult(ok=False)`` the model sees; nothing here raises into the run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from proxy_ext.config import HttpToolConfig
from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec
from proxy_ext.tools.http.retry import RetryPolicy, parse_retry_after
from proxy_ext.tools.metrics import TOOL_RETRIES, observe_call
from proxy_ext.tools.schema import validate_arguments

__all__ = ["HttpToolBackend", "ToolHostError"]

log = logging.getLogger("proxy_ext.tools.http")


class ToolHostError(Exception):
    """A tool-host request failed for good; ``outcome`` is the metrics label."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class HttpToolBackend:
    """Tools of the configured tool host. One instance per process; safe across event loops."""

    def __init__(
        self,
        config: HttpToolConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not config.base_url:
            raise ValueError("HttpToolBackend needs tools.http.base_url")
        self.config = config
        self.base_url = config.base_url
        self._transport = transport
        self._sleep = sleep
        self._rng = rng
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
        self._specs: dict[str, ToolSpec] | None = None
        self._specs_at = 0.0

    # ------------------------------------------------------------------------------ plumbing

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=self.base_url,
                transport=self._transport,
                follow_redirects=False,  # credentials go to the configured host and nowhere else
                timeout=self._timeout(self.config.timeout_s),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            self._clients[loop] = client
        return client

    def _timeout(self, read_s: float) -> httpx.Timeout:
        return httpx.Timeout(connect=min(self.config.connect_timeout_s, read_s), read=read_s, write=read_s, pool=read_s)

    async def aclose(self) -> None:
        """Close the connection pool of the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def headers(self, ctx: ToolContext) -> dict[str, str]:
        """Forwarded caller headers, then configured headers (they win), then the caller's Authorization
        when ``forward_authorization`` is on."""
        incoming: Mapping[str, str] = {k.lower(): v for k, v in ctx.request_headers.items()}
        merged: dict[str, str] = {}
        for name in self.config.forward_headers:
            value = incoming.get(name.lower())
            if value is not None:
                merged[name] = value
        lower = {k.lower(): k for k in merged}
        for name, value in self.config.headers.items():
            merged.pop(lower.get(name.lower(), name), None)
            merged[name] = value
        if self.config.forward_authorization and incoming.get("authorization"):
            merged["Authorization"] = incoming["authorization"]
        return merged

    async def _request(self, method: str, path: str, tool: str, ctx: ToolContext, body: Any = None) -> Any:
        """One logical request with the retry policy; the decoded JSON body or :class:`ToolHostError`."""
        config = self.config
        deadline = None if ctx.timeout_s is None else time.monotonic() + ctx.timeout_s
        policy = RetryPolicy(config.max_retries, config.max_retry_wait_s, config.retry_backoff_s, self._rng)
        headers = self.headers(ctx)
        client = self._client()
        while True:
            remaining = config.timeout_s if deadline is None else min(config.timeout_s, deadline - time.monotonic())
            if remaining <= 0:
                raise ToolHostError("no time left in the run for this tool call", "timeout")
            retry_reason: str | None = None
            retry_after: float | None = None
            try:
                async with asyncio.timeout(remaining + min(config.connect_timeout_s, remaining)):
                    request = client.build_request(method, path, json=body, headers=headers, timeout=self._timeout(remaining))
                    response = await client.send(request, stream=True)
                    try:
                        if response.status_code == 429:
                            retry_reason = "429"
                            retry_after = parse_retry_after(response.headers.get("retry-after"))
                        else:
                            content = await self._read_capped(response)
                    finally:
                        await response.aclose()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                retry_reason = "connect"  # the request never left: safe to send again
            except (httpx.TimeoutException, TimeoutError):
                raise ToolHostError(f"tool host did not answer within {remaining:.3g} s", "timeout") from None
            except httpx.HTTPError as exc:
                raise ToolHostError(f"tool host request failed ({type(exc).__name__})", "error") from None
            if retry_reason is None:
                return self._decode(response, content)
            wait = policy.next_wait(retry_after, None if deadline is None else deadline - time.monotonic())
            if wait is None:
                tries = policy.retries + 1
                if retry_reason == "429":
                    asked = f"; it asked to wait {retry_after:g} s" if retry_after is not None else ""
                    raise ToolHostError(f"tool host rate limit (HTTP 429) after {tries} tr{'y' if tries == 1 else 'ies'}{asked}", "rate_limited")
                raise ToolHostError(f"tool host unreachable after {tries} tr{'y' if tries == 1 else 'ies'}", "unreachable")
            TOOL_RETRIES.labels(tool=tool, reason=retry_reason).inc()
            await self._sleep(wait)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        cap = self.config.max_response_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
            raise ToolHostError(f"tool host response larger than tools.http.max_response_bytes ({cap})", "error")
        data = bytearray()
        async for chunk in response.aiter_raw():
            data += chunk
            if len(data) > cap:
                raise ToolHostError(f"tool host response larger than tools.http.max_response_bytes ({cap})", "error")
        return bytes(data)

    @staticmethod
    def _decode(response: httpx.Response, content: bytes) -> Any:
        if response.status_code != 200:
            snippet = content[:200].decode(errors="replace").strip()
            raise ToolHostError(f"tool host answered HTTP {response.status_code}" + (f": {snippet}" if snippet else ""), "error")
        try:
            import json

            return json.loads(content)
        except ValueError:
            raise ToolHostError("tool host answered with invalid JSON", "error") from None

    # ------------------------------------------------------------------------------ contract

    async def _fetch_specs(self, ctx: ToolContext) -> dict[str, ToolSpec]:
        fresh = self._specs is not None and time.monotonic() - self._specs_at < self.config.tools_cache_ttl_s
        if fresh:
            assert self._specs is not None
            return self._specs
        data = await self._request("GET", "/tools", "list_tools", ctx)
        tools = data.get("tools") if isinstance(data, dict) else None
        if not isinstance(tools, list):
            raise ToolHostError('tool host GET /tools did not answer {"tools": [...]}', "error")
        specs: dict[str, ToolSpec] = {}
        for entry in tools:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                continue  # one malformed entry does not hide the others
            parameters: dict[str, Any] = found if isinstance(found := entry.get("parameters"), dict) else {"type": "object", "properties": {}}
            specs[entry["name"]] = ToolSpec(entry["name"], str(entry.get("description") or ""), parameters)
        self._specs, self._specs_at = specs, time.monotonic()
        return specs

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        """The host's tools (cached for ``tools_cache_ttl_s``).

        If the host cannot be asked, the last listing is used (the run goes on; a call that fails
        reports the problem to the model). With no listing at all :class:`ToolHostError` is raised:
        POST /agent/run then answers 503 naming the problem instead of running without tools.
        """
        try:
            return list((await self._fetch_specs(ctx)).values())
        except ToolHostError as exc:
            if self._specs is None:
                raise
            log.warning("tool host listing failed, using the last one: %s", exc)
            return list(self._specs.values())

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        label = name if self._specs is not None and name in self._specs else "unknown"

        def finish(outcome: str, result: ToolResult) -> ToolResult:
            observe_call("http", label, outcome, time.perf_counter() - started)
            return result

        def failed(outcome: str, error: str) -> ToolResult:
            return finish(outcome, ToolResult(ok=False, error=error, duration_ms=(time.perf_counter() - started) * 1000))

        try:
            specs: dict[str, ToolSpec] | None = await self._fetch_specs(ctx)
        except ToolHostError:
            specs = self._specs  # stale or None: the invoke below reports the host's state
        if specs is not None:
            spec = specs.get(name)
            if spec is None:
                return failed("unknown_tool", f"unknown tool {name!r}; the tool host offers: {', '.join(sorted(specs)) or 'nothing'}")
            label = name
            problem = validate_arguments(spec.parameters, arguments)
            if problem:
                return failed("invalid_arguments", problem)
        try:
            data = await self._request("POST", "/invoke", label, ctx, {"name": name, "arguments": arguments})
        except ToolHostError as exc:
            return failed(exc.outcome, str(exc))
        duration = (time.perf_counter() - started) * 1000
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            return failed("error", 'tool host POST /invoke did not answer {"ok": true|false, ...}')
        if data["ok"]:
            return finish("ok", ToolResult(ok=True, content=data.get("result"), duration_ms=duration))
        return finish("tool_error", ToolResult(ok=False, error=str(data.get("error") or "the tool failed"), duration_ms=duration))
