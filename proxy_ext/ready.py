"""GET /ready: can this proxy serve right now, and which optional capabilities work?

503 only when a *required* check fails (``proxy_ext.ready.required``, default: the Router — a proxy
without a loaded model list cannot serve at all). A failing optional capability (the codex CLI,
the tool host, exec tools, traces and the OpenTelemetry export unless required) leaves the proxy in rotation: 200 with
``"status": "degraded"`` and the failing checks named. ``GET /ready?capability=<check>`` answers
for one check alone (200 / 503), for operators who route or alert per capability.

Checks report only ``ok`` and a short fixed reason — never URLs, paths, keys or other config values
— because load balancers and anonymous callers read this. Results are cached for
``proxy_ext.ready.cache_s`` (default 1 s) and concurrent callers share one evaluation, so a load
balancer may call it every second.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from proxy_ext.state import Runtime, get_runtime

__all__ = ["CheckResult", "evaluate", "exec_isolation", "router", "run_checks"]


@dataclass(frozen=True)
class CheckResult:
    """One named readiness check."""

    ok: bool
    reason: str = ""

    def body(self) -> dict[str, object]:
        return {"ok": self.ok, **({"reason": self.reason} if self.reason else {})}


Check = Callable[[Runtime, float], Awaitable[CheckResult]]


async def check_router(runtime: Runtime, timeout_s: float) -> CheckResult:
    from proxy_ext.litellm_adapter import llm_router

    router = llm_router()
    if router is None:
        return CheckResult(False, "router not loaded")
    if not getattr(router, "model_list", None):
        return CheckResult(False, "router has no models")
    return CheckResult(True)


def trace_dir_problem(runtime: Runtime) -> str | None:
    """Why traces cannot be written (None when they can). Shared with ``proxy-ext doctor``."""
    path = runtime.resolve_path(runtime.settings.traces.path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".proxy_ext_probe_{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"trace directory not writable ({exc.strerror or type(exc).__name__})"
    if path.exists() and not os.access(path, os.W_OK):
        return "trace file not writable"
    return None


async def check_traces(runtime: Runtime, timeout_s: float) -> CheckResult:
    problem = await asyncio.to_thread(trace_dir_problem, runtime)
    return CheckResult(problem is None, problem or "")


async def tool_host_problem(base_url: str, headers: dict[str, str], timeout_s: float) -> str | None:
    """Why the tool host is not usable (None when ``GET /tools`` answers 200)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(f"{base_url}/tools", headers=headers)
    except httpx.TimeoutException:
        return "tool host timed out"
    except httpx.HTTPError:
        return "tool host unreachable"
    if response.status_code != 200:
        return f"tool host answered HTTP {response.status_code}"
    return None


async def check_tool_host(runtime: Runtime, timeout_s: float) -> CheckResult:
    http = runtime.settings.tools.http
    assert http.base_url is not None
    problem = await tool_host_problem(http.base_url, dict(http.headers), timeout_s)
    return CheckResult(problem is None, problem or "")


def exec_problem(runtime: Runtime) -> str | None:
    """Why the exec tools cannot run here (None when they can): Linux with pidfd, the sandbox user
    exists, an interpreter for exec_python that user may run, and bwrap when it is required."""
    from proxy_ext.tools.exec import sandbox_problem

    problem = sandbox_problem(runtime.settings.tools.exec)
    if problem is None and runtime.settings.tools.exec.isolation == "bwrap" and getattr(exec_isolation(runtime), "mode") != "bwrap":
        return "tools.exec.isolation is bwrap but bwrap cannot run here"
    return problem


def exec_isolation(runtime: Runtime) -> object:
    """The exec tools' isolation (``tools.exec.isolation``), as the tools themselves get it."""
    from proxy_ext.tools.exec.isolation import isolation_for

    return isolation_for(runtime.settings.tools.exec)


async def check_exec_isolation(runtime: Runtime, timeout_s: float) -> CheckResult:
    """ok with ``bwrap`` active (or isolation switched off on purpose); failing (degraded) when
    ``auto`` found no usable bwrap or ``bwrap`` was required and cannot run."""
    isolation = await asyncio.to_thread(exec_isolation, runtime)
    mode = getattr(isolation, "mode")
    if mode == "bwrap":
        return CheckResult(True, "bwrap")
    if mode == "none" and runtime.settings.tools.exec.isolation == "none":
        return CheckResult(True, "isolation off (tools.exec.isolation: none)")
    return CheckResult(False, "bwrap required but not usable" if mode == "unavailable" else "bwrap not usable: no namespace isolation")


async def check_exec(runtime: Runtime, timeout_s: float) -> CheckResult:
    problem = await asyncio.to_thread(exec_problem, runtime)
    return CheckResult(problem is None, problem or "")


def codex_cli_in_use(runtime: Runtime) -> bool:
    """Whether the codex-agent provider is enabled and some model runs the codex CLI (section
    ``mode: cli``, or a model's ``codex_agent: {mode: cli}``; the alias never implies it)."""
    from proxy_ext.providers.registry import cli_in_use

    return cli_in_use(runtime.document, runtime.settings.providers.codex_agent)


def codex_cli_missing(runtime: Runtime) -> dict[str, list[str]]:
    """The codex executables CLI-mode models name that cannot be started: binary -> model names.

    Each model's binary is its own ``codex_agent.cli.binary`` or the section's, resolved exactly as
    the provider does (a path relative to the config file, or a name on PATH).
    """
    from proxy_ext.providers.codex_agent.cli import resolve_binary
    from proxy_ext.providers.registry import codex_models

    section = runtime.settings.providers.codex_agent
    missing: dict[str, list[str]] = {}
    for model in codex_models(runtime.document, section):
        if model.mode == "cli" and resolve_binary(model.cli_binary, runtime) is None:
            missing.setdefault(model.cli_binary, []).append(model.name)
    return missing


def codex_cli_problem(runtime: Runtime) -> str | None:
    """Why the codex CLI cannot be started for some model (None when every CLI model's binary is found)."""
    missing = codex_cli_missing(runtime)
    if not missing:
        return None
    section_binary = runtime.settings.providers.codex_agent.cli.binary
    if list(missing) == [section_binary]:
        return "codex binary not found"
    return "codex binary not found: " + "; ".join(f"{binary!r} (model {', '.join(names)})" for binary, names in missing.items())


async def check_codex_cli(runtime: Runtime, timeout_s: float) -> CheckResult:
    problem = codex_cli_problem(runtime)
    return CheckResult(problem is None, problem or "")


async def check_otel(runtime: Runtime, timeout_s: float) -> CheckResult:
    """The OpenTelemetry export: failing (degraded) while the last export failed."""
    from proxy_ext.agent.otel_export import health_problem

    problem = health_problem()
    return CheckResult(problem is None, problem or "")


async def check_runs(runtime: Runtime, timeout_s: float) -> CheckResult:
    """The durable run store (SQLite file or Redis) answers; degraded, not 503, when it does not:
    foreground runs still work."""
    from proxy_ext.exceptions import ProxyExtError

    try:
        from proxy_ext.runs import durable_runs

        await asyncio.wait_for(asyncio.to_thread(lambda: durable_runs(runtime).store.ping()), timeout_s)  # both may block
    except ProxyExtError as exc:
        return CheckResult(False, exc.message)
    except Exception as exc:  # noqa: BLE001 - the reason is the answer
        return CheckResult(False, f"run store unreachable: {type(exc).__name__}")
    return CheckResult(True)


async def check_litellm_version(runtime: Runtime, timeout_s: float) -> CheckResult:
    from proxy_ext.litellm_adapter import version_problem

    problem = version_problem()
    return CheckResult(problem is None, problem or "")


MCP_RECHECK_S = 30.0
"""A server's last state is reused this long; then /ready contacts it again."""


def _mcp_check(server: object) -> Check:
    async def check_mcp_server(runtime: Runtime, timeout_s: float) -> CheckResult:
        from proxy_ext.agent.backends import mcp_backend

        backend = mcp_backend(runtime.settings)
        state = backend.states.get(getattr(server, "server_id", ""))
        if state is None or state.ok is None or time.time() - state.checked_at > MCP_RECHECK_S:
            try:
                await backend.server_tools(server, max_age_s=MCP_RECHECK_S)
            except Exception:  # noqa: BLE001 - the state says why
                pass
            state = backend.states.get(getattr(server, "server_id", ""))
        if state is None or not state.ok:
            return CheckResult(False, "MCP server unavailable")
        return CheckResult(True)

    return check_mcp_server


def mcp_checks(runtime: Runtime) -> dict[str, Check]:
    """One check per MCP server the agent uses (``mcp_<server>``)."""
    if not runtime.settings.tools.mcp.enabled:
        return {}
    from proxy_ext import litellm_adapter as adapter
    from proxy_ext.agent.backends import mcp_backend

    return {f"mcp_{adapter.mcp_server_label(server)}": _mcp_check(server) for server in mcp_backend(runtime.settings).servers()}


async def check_global_run_limit(runtime: Runtime, timeout_s: float) -> CheckResult:
    """The Redis of ``scale.global_max_concurrent_runs`` answers (else runs get a 503, or start
    without the global limit with ``scale.on_redis_error: allow``)."""
    from proxy_ext.scale.leases import redis_problem

    problem = await asyncio.to_thread(redis_problem, runtime.settings.scale, timeout_s)
    return CheckResult(problem is None, problem or "")


def enabled_checks(runtime: Runtime) -> dict[str, Check]:
    """The checks that apply to this configuration, by name."""
    from proxy_ext.agent.otel_export import is_enabled as otel_enabled

    settings = runtime.settings
    checks: dict[str, Check] = {"router": check_router}
    if settings.traces.enabled:
        checks["traces"] = check_traces
    if otel_enabled(settings.traces.otel):
        checks["otel"] = check_otel
    if settings.tools.http.base_url:
        checks["tool_host"] = check_tool_host
    if settings.tools.exec.enabled:
        checks["exec_tools"] = check_exec
        checks["exec_isolation"] = check_exec_isolation
    if codex_cli_in_use(runtime):
        checks["codex_cli"] = check_codex_cli
    if settings.scale.global_max_concurrent_runs is not None:
        checks["global_run_limit"] = check_global_run_limit
    if settings.agent.enabled and settings.runs.enabled and settings.runs.store == "redis":
        checks["runs"] = check_runs  # a remote dependency (the SQLite file is checked when it is opened)
    from proxy_ext.litellm_adapter import version_problem

    if version_problem() is not None:
        checks["litellm_version"] = check_litellm_version  # degraded (not 503): it may well work
    checks.update(mcp_checks(runtime))
    return checks


async def run_checks(runtime: Runtime) -> dict[str, CheckResult]:
    """Run every enabled check concurrently, each bounded by ``ready.check_timeout_s``."""
    timeout_s = runtime.settings.ready.check_timeout_s
    checks = enabled_checks(runtime)

    async def bounded(check: Check) -> CheckResult:
        try:
            return await asyncio.wait_for(check(runtime, timeout_s), timeout_s + 0.5)
        except asyncio.TimeoutError:
            return CheckResult(False, "check timed out")
        except Exception as exc:  # a broken check must not turn /ready into a 500
            return CheckResult(False, f"check failed ({type(exc).__name__})")

    results = await asyncio.gather(*(bounded(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


class _Cache:
    def __init__(self) -> None:
        self.at = 0.0
        self.value: dict[str, CheckResult] | None = None
        self.lock = asyncio.Lock()


_cache = _Cache()


async def evaluate(runtime: Runtime | None = None) -> tuple[bool, dict[str, CheckResult]]:
    """(every check ok, checks), reusing a result younger than ``ready.cache_s``."""
    runtime = runtime or get_runtime()
    max_age = runtime.settings.ready.cache_s
    if _cache.value is not None and time.monotonic() - _cache.at < max_age:
        results = _cache.value
    else:
        async with _cache.lock:  # concurrent callers wait for one evaluation
            if _cache.value is None or time.monotonic() - _cache.at >= max_age:
                _cache.value = await run_checks(runtime)
                _cache.at = time.monotonic()
            results = _cache.value
    return all(r.ok for r in results.values()), results


def readiness(runtime: Runtime, results: dict[str, CheckResult]) -> tuple[int, dict[str, object]]:
    """(HTTP status, body) of GET /ready for these check results."""
    required = set(runtime.settings.ready.required) | {"router"}
    failing = [name for name, result in results.items() if not result.ok]
    unavailable = [name for name in failing if name in required]
    status = "unavailable" if unavailable else "degraded" if failing else "ok"
    body: dict[str, object] = {"ready": not unavailable, "status": status,
                               "checks": {name: result.body() for name, result in results.items()}}
    if failing:
        body["failing"] = failing
    return (503 if unavailable else 200), body


router = APIRouter()

_READY_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "The proxy can serve (``status`` ok, or degraded: an optional capability failed)"},
    503: {"description": "A required check failed (the proxy cannot serve), or the asked capability is not usable"},
    404: {"description": "``capability`` names no check of this configuration"},
}


@router.get("/ready", tags=["proxy_ext"], summary="Readiness of the proxy and of proxy_ext's capabilities", responses=_READY_RESPONSES)
async def ready(capability: str | None = None) -> JSONResponse:
    """Readiness for load balancers (no key needed); ``capability`` narrows it to one check."""
    from proxy_ext.exceptions import error_body

    runtime = get_runtime()
    _, results = await evaluate(runtime)
    headers = {"Cache-Control": "no-store"}
    if capability is None:
        status, body = readiness(runtime, results)
        return JSONResponse(body, status_code=status, headers=headers)
    result = results.get(capability)
    if result is None:
        known = ", ".join(sorted(results))
        return JSONResponse(error_body(404, f"no readiness check {capability[:64]!r} in this configuration; checks: {known}", "capability"),
                            status_code=404, headers=headers)
    return JSONResponse({"ready": result.ok, "capability": capability, "check": result.body()},
                        status_code=200 if result.ok else 503, headers=headers)
