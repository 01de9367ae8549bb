"""ExecToolBackend: the ``exec_python`` and ``exec_shell`` tools on top of the fork-server sandbox."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import weakref
from typing import Any

from proxy_ext.config import ExecToolConfig
from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec
from proxy_ext.tools.exec.isolation import Isolation, isolation_for
from proxy_ext.tools.exec.sandbox import Sandbox, SandboxError, SandboxUser, dir_usable_by, find_python, resolve_user, usable_by
from proxy_ext.tools.exec.shell import CommandRefused, parse_allowlisted
from proxy_ext.tools.metrics import observe_call
from proxy_ext.tools.schema import validate_arguments

__all__ = ["ExecToolBackend", "sandbox_problem"]

_TIMEOUT_PROPERTY = {"type": "number", "exclusiveMinimum": 0, "description": "Seconds before the process tree is killed (optional)."}


def _specs(config: ExecToolConfig) -> dict[str, ToolSpec]:
    limits = (f"Limits: {config.timeout_s:g} s default timeout (max {config.max_timeout_s:g} s), "
              f"{config.max_output_bytes} bytes of stdout and of stderr, {config.limits.memory_mb} MiB memory. "
              "Runs in a fresh empty working directory; no secrets in the environment. "
              "Returns {rc, stdout, stderr, timed_out, truncated, duration_ms}.")
    if config.shell_mode == "allowlist":
        shell_doc = ("Run one program with arguments (no shell: no pipes, redirection, globbing or variables). "
                     f"Allowed programs: {', '.join(sorted(config.shell_allowlist))}. ")
    else:
        shell_doc = "Run a /bin/sh command line. "
    return {
        "exec_python": ToolSpec(
            name="exec_python",
            description="Run a Python 3 program (standard library only) and return its output. Print what you need. " + limits,
            parameters={"type": "object", "properties": {
                "code": {"type": "string", "description": "The Python source to run."},
                "timeout_s": _TIMEOUT_PROPERTY}, "required": ["code"], "additionalProperties": False},
        ),
        "exec_shell": ToolSpec(
            name="exec_shell",
            description=shell_doc + limits,
            parameters={"type": "object", "properties": {
                "command": {"type": "string", "description": "The command line."},
                "timeout_s": _TIMEOUT_PROPERTY}, "required": ["command"], "additionalProperties": False},
        ),
    }


def sandbox_problem(config: ExecToolConfig) -> str | None:
    """Why the exec tools cannot run here (None when they can). Used by /ready and ``doctor``."""
    if not sys.platform.startswith("linux"):
        return "exec tools need Linux (child subreaper, pidfd)"
    if not hasattr(os, "pidfd_open"):
        return "exec tools need os.pidfd_open (Linux 5.3+)"
    try:  # fixed reasons: /ready shows them to anonymous callers (no user names or paths)
        user = resolve_user(config)
    except SandboxError:
        return "tools.exec.run_as_user does not exist on this system"
    if find_python(config, user) is None:
        return "no python interpreter for exec_python that the sandbox user may run"
    base = config.tmp_dir or tempfile.gettempdir()
    if not os.path.isdir(base):
        return "the exec working-directory base (tools.exec.tmp_dir) does not exist"
    if not dir_usable_by(base, user):
        return "the sandbox user cannot enter the exec working-directory base (tools.exec.tmp_dir)"
    return None


class ExecToolBackend:
    """Offers ``exec_python`` and ``exec_shell``; each call runs in its own sandboxed process tree."""

    def __init__(self, config: ExecToolConfig) -> None:
        self.config = config
        self.sandbox = Sandbox(config)
        self.specs = _specs(config)
        self._user: SandboxUser | None = None
        self._python: str | None = None
        self._isolation: Isolation | None = None
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        return list(self.specs.values())

    def close(self) -> None:
        """Stop the fork server."""
        self.sandbox.close()

    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is None:
            slot = self._slots[loop] = asyncio.Semaphore(self.config.max_concurrent_calls)
        return slot

    def _resolve(self) -> tuple[SandboxUser, str | None]:
        if self._user is None:
            self._user = resolve_user(self.config)
            self._python = find_python(self.config, self._user)
        return self._user, self._python

    def isolation(self) -> Isolation:
        """How this backend's tools are isolated (bwrap is probed once per process, on first use)."""
        if self._isolation is None:
            self._isolation = isolation_for(self.config)
        return self._isolation

    def _timeout(self, arguments: dict[str, Any], ctx: ToolContext) -> float:
        timeout = min(float(arguments.get("timeout_s") or self.config.timeout_s), self.config.max_timeout_s)
        if ctx.timeout_s is not None:
            timeout = min(timeout, ctx.timeout_s)
        return timeout

    def _command(self, name: str, arguments: dict[str, Any], user: SandboxUser, python: str | None) -> tuple[str, list[str]]:
        if name == "exec_python":
            if python is None:
                raise SandboxError("no python interpreter for exec_python that the sandbox user may run")
            return python, [python, "-I", "-S", "-c", arguments["code"]]
        command = arguments["command"]
        if self.config.shell_mode == "unrestricted":
            return "/bin/sh", ["/bin/sh", "-c", command]
        executable, argv = parse_allowlisted(command, self.config.shell_allowlist, self.config.path)
        if not usable_by(executable, user):
            raise CommandRefused(f"{argv[0]!r} is not executable by the sandbox user")
        return executable, argv

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()

        def done(outcome: str, result: ToolResult) -> ToolResult:
            observe_call("exec", name if name in self.specs else "unknown", outcome, time.perf_counter() - started)
            return result

        def failed(outcome: str, error: str) -> ToolResult:
            return done(outcome, ToolResult(ok=False, error=error, duration_ms=(time.perf_counter() - started) * 1000))

        spec = self.specs.get(name)
        if spec is None:
            return failed("unknown_tool", f"unknown tool {name!r}")
        problem = validate_arguments(spec.parameters, arguments)
        if problem:
            return failed("invalid_arguments", problem)
        text = arguments.get("code", arguments.get("command", ""))
        if len(text.encode()) > self.config.max_code_bytes:
            return failed("invalid_arguments", f"the {'code' if name == 'exec_python' else 'command'} is longer than "
                                               f"tools.exec.max_code_bytes ({self.config.max_code_bytes} bytes)")
        if "\x00" in text:
            return failed("invalid_arguments", "NUL characters are not allowed")
        timeout = self._timeout(arguments, ctx)
        if timeout <= 0:
            return failed("timeout", "no time left in the run for this tool call")
        try:
            user, python = self._resolve()
            executable, argv = self._command(name, arguments, user, python)
            isolation = await asyncio.to_thread(self.isolation) if self._isolation is None else self._isolation
        except CommandRefused as exc:
            return failed("refused", str(exc))
        except SandboxError as exc:
            return failed("error", str(exc))
        if isolation.mode == "unavailable":
            return failed("error", isolation.reason)
        try:
            async with self._slot():
                outcome = await self.sandbox.run(executable, argv, timeout, user, isolation.request(name in self.config.allow_network))
        except SandboxError as exc:
            return failed("error", str(exc))
        label = "timeout" if outcome.timed_out else ("ok" if outcome.rc == 0 else "nonzero_exit")
        return done(label, ToolResult(ok=True, content=outcome.as_dict(), duration_ms=(time.perf_counter() - started) * 1000))

