"""``proxy_ext.tools``: the exec, HTTP and MCP tool backends."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from proxy_ext._config.base import _Section
from proxy_ext.credentials import CREDENTIAL_HEADERS, SECRET_ENV_NAME

__all__ = [
    "DEFAULT_ENV_ALLOWLIST",
    "DEFAULT_EXEC_ENV_ALLOWLIST",
    "DEFAULT_SHELL_ALLOWLIST",
    "ExecLimits",
    "ExecToolConfig",
    "HttpToolConfig",
    "McpToolConfig",
    "ToolsConfig",
]


class ExecLimits(_Section):
    """Resource limits applied to every exec tool process (setrlimit)."""

    cpu_s: int = Field(default=10, ge=1)
    """CPU seconds (RLIMIT_CPU)."""
    memory_mb: int = Field(default=512, ge=64)
    """Address space in MiB (RLIMIT_AS); at least 64 (a Python interpreter needs ~30)."""
    file_size_mb: int = Field(default=16, ge=1)
    """Largest file the process may write, in MiB (RLIMIT_FSIZE)."""
    max_processes: int = Field(default=64, ge=1)
    """Process count for the sandbox user (RLIMIT_NPROC); it counts all processes of that user and
    is applied only when tools run as ``run_as_user`` (the proxy runs as root)."""
    open_files: int = Field(default=256, ge=16)
    """Open file descriptors (RLIMIT_NOFILE)."""


# No awk/sed/xargs by default: they run arbitrary commands (system(), the sed ``e`` command).
# ``env`` and ``find`` are allowed only in forms that cannot start another program (see exec/shell.py).
DEFAULT_SHELL_ALLOWLIST = (
    "cat", "echo", "ls", "pwd", "head", "tail", "wc", "grep", "sort", "uniq", "cut", "tr",
    "date", "true", "false", "printf", "find", "basename", "dirname", "env", "sleep",
    "seq", "expr", "test",
)
DEFAULT_ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")
"""Default pass-through environment of subprocesses (the codex CLI)."""
DEFAULT_EXEC_ENV_ALLOWLIST = ("LANG", "LC_ALL", "TZ")
"""Default pass-through environment of exec tools (PATH, HOME, TMPDIR and PWD are set by the sandbox)."""
_SANDBOX_SET_ENV = {"PATH", "HOME", "TMPDIR", "PWD"}
_SECRET_NAME = SECRET_ENV_NAME


class ExecToolConfig(_Section):
    """``proxy_ext.tools.exec``: the sandboxed ``exec_python`` / ``exec_shell`` tools (off by default)."""

    enabled: bool = False
    """Offer exec_python and exec_shell to the agent."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Default per-call timeout; the whole process tree is killed when it expires."""
    max_timeout_s: float = Field(default=60.0, gt=0)
    """Largest per-call timeout a tool call may ask for."""
    kill_grace_s: float = Field(default=5.0, gt=0, le=300)
    """How long past a call's timeout the proxy waits for the call's supervisor to kill the tree and
    report; a supervisor that has not answered by then (a tool may have stopped it) is killed with its
    tree and the call fails."""
    max_output_bytes: int = Field(default=65_536, ge=1024)
    """Cap for stdout and for stderr, each; the rest is discarded, not buffered."""
    shell_mode: Literal["allowlist", "unrestricted"] = "allowlist"
    """``allowlist``: exec_shell runs only executables in ``shell_allowlist``. ``unrestricted`` must be
    named explicitly to allow any command line."""
    shell_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_SHELL_ALLOWLIST))
    """Executables exec_shell may run in allowlist mode."""
    env_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_EXEC_ENV_ALLOWLIST))
    """Environment variables of the proxy passed through to tool processes. Names that look like
    secrets (KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL, AUTH) are refused; PATH, HOME, TMPDIR and PWD
    are set by the sandbox."""
    path: str = "/usr/local/bin:/usr/bin:/bin"
    """PATH of tool processes (also where exec_shell looks up allowlisted executables)."""
    python_executable: str | None = None
    """Interpreter for exec_python, run as ``python -I -S`` (standard library only). Default: the
    proxy's interpreter if the sandbox user may run it, else ``python3`` on ``path``."""
    run_as_user: str | None = "nobody"
    """When the proxy runs as root, tool processes run as this user (None: stay root, not
    recommended). Ignored when the proxy is not root: tools then run as the proxy's user."""
    tmp_dir: str | None = None
    """Where the per-call working directories are created (default: the system temp directory)."""
    max_code_bytes: int = Field(default=100_000, ge=1, le=120_000)
    """Largest ``code`` (exec_python) or ``command`` (exec_shell) argument, in bytes."""
    max_concurrent_calls: int = Field(default=16, ge=1, le=1024)
    """Exec tool calls running at the same time in this proxy; more wait for a free slot."""
    isolation: Literal["auto", "bwrap", "none"] = "auto"
    """Namespace isolation of tool processes with bubblewrap: no network, no view of the proxy's
    files, own PID/IPC/UTS namespaces, a seccomp filter (docs/tools.md). ``auto``: bwrap when it
    works here, else the plain sandbox with a warning (/ready shows it degraded). ``bwrap``: exec
    tools are refused when bwrap cannot run. ``none``: the plain sandbox (user, rlimits, fresh
    directory, scrubbed environment) only."""
    allow_network: list[Literal["exec_python", "exec_shell"]] = Field(default_factory=list)
    """Tools that keep the host's network (and its loopback services) under bwrap isolation."""
    ro_paths: list[str] = Field(default_factory=list)
    """Extra absolute paths tools may read under bwrap isolation (e.g. a data directory)."""
    bwrap: str = "bwrap"
    """The bubblewrap executable (a name looked up on ``path`` and /usr/bin, or a path)."""
    idle_supervisors: int = Field(default=2, ge=1, le=64)
    """Call supervisors the fork server keeps alive and reuses (at least one is always idle, so no
    call waits for a fork; more absorb bursts of parallel calls)."""
    limits: ExecLimits = Field(default_factory=ExecLimits)
    """Resource limits."""

    @field_validator("env_allowlist")
    @classmethod
    def _no_secret_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if name.upper() in _SANDBOX_SET_ENV:
                raise ValueError(f"{name} is set by the sandbox (see tools.exec.path); remove it from env_allowlist")
            if _SECRET_NAME.search(name):
                raise ValueError(f"{name} looks like a secret; tool processes never receive secrets")
        return names

    @field_validator("ro_paths")
    @classmethod
    def _absolute_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/") or os.path.normpath(path) in ("/", "/root", "/home", "/etc", "/proc", "/sys"):
                raise ValueError(f"{path!r} must be an absolute path below the top level (not /, /root, /home, /etc, /proc or /sys)")
        return paths

    @model_validator(mode="after")
    def _timeout_within_max(self) -> "ExecToolConfig":
        if self.timeout_s > self.max_timeout_s:
            raise ValueError(
                f"tools.exec.timeout_s ({self.timeout_s}) exceeds tools.exec.max_timeout_s ({self.max_timeout_s})"
            )
        return self


_CREDENTIAL_HEADERS = {*CREDENTIAL_HEADERS, "cookie", "proxy-authorization"}
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-type", "accept-encoding", "te", "upgrade"}


class HttpToolConfig(_Section):
    """``proxy_ext.tools.http``: remote tools from an HTTP tool host (``GET /tools``, ``POST /invoke``)."""

    base_url: str | None = None
    """Tool host base URL, e.g. ``http://127.0.0.1:8790``. None: the http backend is off."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every tool-host request (values may be ``os.environ/NAME``)."""
    forward_headers: list[str] = Field(default_factory=list)
    """Caller request headers copied onto tool-host requests (never ``Authorization``; see below)."""
    forward_authorization: bool = False
    """Forward the caller's ``Authorization`` header, to the configured host only."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Read/write timeout per tool-host request."""
    connect_timeout_s: float = Field(default=2.0, gt=0)
    """Connect timeout per tool-host request."""
    max_retries: int = Field(default=3, ge=0, le=20)
    """Retries after a 429 or a connect error."""
    max_retry_wait_s: float = Field(default=30.0, ge=0)
    """Cap on the total time spent waiting between retries of one call."""
    retry_backoff_s: float = Field(default=0.25, ge=0)
    """First backoff between retries (doubled each try, with jitter) when no ``Retry-After`` is given."""
    max_response_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest tool-host response body; a bigger one is an error the model sees."""
    tools_cache_ttl_s: float = Field(default=60.0, ge=0)
    """How long the ``GET /tools`` listing is cached."""

    @model_validator(mode="after")
    def _one_authorization_source(self) -> "HttpToolConfig":
        if self.forward_authorization and any(k.lower() == "authorization" for k in self.headers):
            raise ValueError("tools.http.headers sets Authorization and forward_authorization is on: choose one")
        for name in self.forward_headers:
            if name.lower() in _CREDENTIAL_HEADERS:
                raise ValueError(f"tools.http.forward_headers cannot name {name} (a credential); use forward_authorization for Authorization")
            if name.lower() in _HOP_HEADERS:
                raise ValueError(f"tools.http.forward_headers cannot name {name} (set by the HTTP client)")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class McpToolConfig(_Section):
    """``proxy_ext.tools.mcp``: the MCP servers of LiteLLM's gateway (``mcp_servers:``) as agent tools."""

    enabled: bool = True
    """Offer the tools of the config's ``mcp_servers:`` to the agent (``local`` backend), each key
    seeing only the servers and tools LiteLLM lets it use. Stdio servers also need LiteLLM's
    ``LITELLM_ENABLE_MCP_STDIO=true``."""
    servers: list[str] | None = None
    """Only these servers (names or aliases as in ``mcp_servers:``; None: all)."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Longest wait for one MCP tool call (and for a server to start); the session of a call that
    does not answer is closed, so the server sees it cancelled."""
    sessions_per_server: int = Field(default=2, ge=1, le=16)
    """Persistent sessions kept per server (stdio: processes); parallel calls beyond wait."""
    tools_cache_ttl_s: float = Field(default=300.0, ge=0)
    """How long a server's tool list is reused before it is listed again."""
    max_output_bytes: int = Field(default=65_536, ge=1024)
    """Longest tool result text kept (the agent cuts to ``agent.limits.max_tool_result_bytes`` too)."""


class ToolsConfig(_Section):
    """``proxy_ext.tools``."""

    exec: ExecToolConfig = Field(default_factory=ExecToolConfig)
    """Sandboxed exec tools."""
    http: HttpToolConfig = Field(default_factory=HttpToolConfig)
    """HTTP tool host."""
    mcp: McpToolConfig = Field(default_factory=McpToolConfig)
    """MCP servers of LiteLLM's gateway."""

