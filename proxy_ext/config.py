"""The whole ``proxy_ext:`` config section as one pydantic schema.

LiteLLM ignores unknown top-level config sections, so proxy_ext reads ``proxy_ext:`` from the same
YAML file the proxy was started with and validates it here. Every limit has a default and a key.
Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.

A few environment variables (named by the seed project) are read through the same layer, see
:func:`apply_environment`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "AgentBudget",
    "AgentConfig",
    "AgentLimits",
    "AgentProfile",
    "CodexAgentCliConfig",
    "CodexAgentConfig",
    "ConfigError",
    "CostConfig",
    "ExecLimits",
    "ExecToolConfig",
    "GuardConfig",
    "HttpToolConfig",
    "McpToolConfig",
    "MetricsConfig",
    "ProvidersConfig",
    "ProxyExtConfig",
    "ReadyConfig",
    "RunsConfig",
    "ScaleConfig",
    "ToolsConfig",
    "TracesConfig",
    "apply_environment",
    "format_validation_error",
    "load_config_file",
    "parse_config",
]


class ConfigError(ValueError):
    """The ``proxy_ext:`` section (or the file holding it) is invalid; the message says what to fix."""


class _Section(BaseModel):
    # Field docstrings are read by proxy_ext.config_reference (not use_attribute_docstrings: that
    # parses source at import and would add ~100 ms to proxy start-up).
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


# ----------------------------------------------------------------------------------------- agent


class AgentBudget(_Section):
    """Default per-run budget. A request may ask for less, or more up to ``agent.limits``."""

    max_cost_usd: float | None = Field(default=None, gt=0)
    """Stop the run once the summed LiteLLM response cost reaches this many USD (None: no cost stop)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Stop once prompt + completion tokens over all model turns reach this (None: no token stop)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Wall-clock limit for one run, in seconds."""


class AgentLimits(_Section):
    """Operator maxima: per-request values above these are rejected with a 400."""

    max_iterations: int = Field(default=32, ge=1, le=1000)
    """Largest ``max_iterations`` a request may ask for."""
    max_cost_usd: float = Field(default=5.0, gt=0)
    """Largest ``budget.max_cost_usd`` a request may ask for."""
    max_tokens: int = Field(default=1_000_000, gt=0)
    """Largest ``budget.max_tokens`` a request may ask for."""
    timeout_s: float = Field(default=600.0, gt=0)
    """Largest ``budget.timeout_s`` a request may ask for."""
    max_request_bytes: int = Field(default=1_048_576, gt=0)
    """Largest /agent/run request body, in bytes."""
    max_messages: int = Field(default=500, ge=1)
    """Largest number of input messages."""
    max_concurrent_tool_calls: int = Field(default=8, ge=1, le=256)
    """How many tool calls from one model turn may run at the same time."""
    max_tool_result_bytes: int = Field(default=65_536, ge=256)
    """Tool results longer than this are cut (with a note) before the model sees them."""
    max_concurrent_runs: int = Field(default=256, ge=1)
    """Runs in progress per proxy instance, across all its workers (``--num_workers``); further
    requests get a 429 until one finishes. See ``scale`` for per-key and cross-instance limits."""


class AgentProfile(_Section):
    """A named agent setup, selected by ``profile`` on /agent/run or the model ``mini-agent/<name>``."""

    model: str | None = None
    """First model of the ladder (defaults to ``agent.default_model``)."""
    escalation: list[str] | None = None
    """Model ladder; overrides ``agent.escalation``."""
    tools: list[str] | None = None
    """Tool names the agent may use (None: every tool of the backend)."""
    backend: Literal["local", "http", "echo"] | None = None
    """Tool backend (defaults to ``agent.backend``)."""
    max_iterations: int | None = Field(default=None, ge=1)
    """Iteration limit for this profile."""
    budget: AgentBudget | None = None
    """Budget for this profile."""
    system_prompt: str | None = None
    """System message prepended when the request has none."""
    requires_approval: list[str] | None = None
    """Tool names or patterns (``exec_*``, ``everything-*``) whose calls wait for a person's approval
    (replaces ``agent.requires_approval`` for this profile)."""


class AgentConfig(_Section):
    """``proxy_ext.agent``: defaults and limits of POST /agent/run."""

    enabled: bool = True
    """Register POST /agent/run."""
    default_model: str | None = None
    """Model used when a request names none (a ``model_name`` of the proxy's model_list)."""
    escalation: list[str] = Field(default_factory=list)
    """Model ladder, cheapest first; the run moves up on model errors, iteration exhaustion without
    an answer and repeated tool errors."""
    max_iterations: int = Field(default=8, ge=1)
    """Default number of model turns per model of the ladder."""
    backend: Literal["local", "http", "echo"] = "local"
    """Default tool backend."""
    budget: AgentBudget = Field(default_factory=AgentBudget)
    """Default per-run budget."""
    limits: AgentLimits = Field(default_factory=AgentLimits)
    """Operator maxima for per-request values."""
    max_history_tokens: int = Field(default=24_000, ge=256)
    """History pruning keeps each model call's prompt under this many tokens."""
    tool_error_escalation: int = Field(default=3, ge=1)
    """Escalate after this many consecutive failing tool results."""
    fallback: bool = True
    """When every model of the ladder fails, try one plain one-shot completion."""
    fallback_model: str | None = None
    """Model of the one-shot fallback (default: the last model of the run's ladder)."""
    model_transport: Literal["asgi", "http"] = "asgi"
    """How the agent's model calls reach this proxy's /v1/chat/completions: ``asgi`` (in process,
    through the proxy's own ASGI app: same auth, hooks and spend logging, no socket) or ``http``
    (loopback HTTP to ``proxy_base_url`` or the address the request arrived on)."""
    proxy_base_url: str | None = None
    """Where the agent reaches this proxy for its model calls (default: the address the request
    arrived on; set it when the proxy listens on an address it cannot call itself, e.g. behind a
    Unix socket)."""
    local_tools: list[str] = Field(default_factory=list)
    """Dotted paths (``package.module.function``) of Python callables added to the local backend."""
    requires_approval: list[str] = Field(default_factory=list)
    """Tool names or patterns (``exec_*``) whose calls wait for a person's approval: the run pauses
    (``awaiting_approval``) until ``POST /agent/runs/{id}/approvals`` decides (docs/agent.md)."""
    profiles: dict[str, AgentProfile] = Field(default_factory=dict)
    """Named agent profiles."""

    def named_models(self) -> list[tuple[str, str]]:
        """Every model the agent may call, as (config key, model name)."""
        named = [("agent.default_model", self.default_model), ("agent.fallback_model", self.fallback_model),
                 *(("agent.escalation", m) for m in self.escalation)]
        for name, profile in self.profiles.items():
            named += [(f"agent.profiles.{name}", m) for m in [profile.model, *(profile.escalation or [])]]
        return [(where, model) for where, model in named if model]

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> "AgentConfig":
        if self.max_iterations > self.limits.max_iterations:
            raise ValueError(
                f"agent.max_iterations ({self.max_iterations}) exceeds agent.limits.max_iterations "
                f"({self.limits.max_iterations})"
            )
        if self.budget.timeout_s > self.limits.timeout_s:
            raise ValueError(
                f"agent.budget.timeout_s ({self.budget.timeout_s}) exceeds agent.limits.timeout_s "
                f"({self.limits.timeout_s})"
            )
        for where, model in self.named_models():
            if model.startswith("mini-agent/"):
                raise ValueError(
                    f"{where} names the model {model!r}: the agent cannot use a mini-agent/* model "
                    "(that would recurse); name a model of the model_list"
                )
        return self


# ----------------------------------------------------------------------------------------- tools


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
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.I)


class ExecToolConfig(_Section):
    """``proxy_ext.tools.exec``: the sandboxed ``exec_python`` / ``exec_shell`` tools (off by default)."""

    enabled: bool = False
    """Offer exec_python and exec_shell to the agent."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Default per-call timeout; the whole process tree is killed when it expires."""
    max_timeout_s: float = Field(default=60.0, gt=0)
    """Largest per-call timeout a tool call may ask for."""
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


_CREDENTIAL_HEADERS = {"authorization", "x-litellm-api-key", "api-key", "x-api-key", "cookie", "proxy-authorization"}
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


# ---------------------------------------------------------------------------------- other sections


class TracesConfig(_Section):
    """``proxy_ext.traces``: one JSONL record per agent run."""

    enabled: bool = False
    """Write traces (also on when ``MINI_AGENT_STORE_TRACES=1``)."""
    path: str = "traces/agent_runs.jsonl"
    """JSONL file (``MINI_AGENT_STORE_PATH`` overrides); relative paths are relative to the config file."""
    redact_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions whose matches are replaced by ``[REDACTED]`` in traces."""

    @field_validator("redact_patterns")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class RunsConfig(_Section):
    """``proxy_ext.runs``: durable agent runs (``background: true``, approvals; docs/agent.md)."""

    enabled: bool = True
    """Serve ``/agent/runs`` and accept background runs; paused (approval) runs are kept here too."""
    store: Literal["sqlite", "redis"] = "sqlite"
    """``sqlite``: one file, for the workers of one box. ``redis``: shared by every worker and instance."""
    path: str = "runs/agent_runs.sqlite3"
    """SQLite file (relative paths: to the config file's directory)."""
    redis_url: str | None = None
    """Redis for ``store: redis`` (``redis://host:port/0``; ``os.environ/NAME`` works). Unset: the Redis
    LiteLLM is given (``litellm_settings.cache_params`` host/port/password, or ``REDIS_URL`` /
    ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``)."""
    lease_s: float = Field(default=15.0, gt=0)
    """A worker renews the lease of each run it executes every third of this; a run whose lease ran
    out (its worker died) is continued by another worker from its last checkpoint."""
    poll_interval_s: float = Field(default=0.2, gt=0)
    """How often idle workers look for queued runs, and event streams for new events."""
    approval_timeout_s: float = Field(default=3600.0, gt=0)
    """How long a run waits for approval decisions before it stops (``approval_expired``)."""
    max_attempts: int = Field(default=3, ge=1)
    """Starts of one run (first start and continuations after a worker died) before it is marked
    ``interrupted``."""
    retention_s: float = Field(default=7 * 86400.0, gt=0)
    """Finished runs (and their events) older than this are deleted."""
    max_runs: int = Field(default=10_000, ge=1)
    """Finished runs kept at most (the oldest go first)."""
    max_queued_runs: int = Field(default=10_000, ge=1)
    """Background runs waiting for a slot at most; more answer 429."""
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    """An SSE comment on ``/agent/runs/{id}/events`` after this long without an event (keeps proxies from closing it)."""


class CostConfig(_Section):
    """``proxy_ext.cost``: USD cost in every JSON response body."""

    enabled: bool = True
    """Add ``usage.cost`` / ``usage.cost_details`` (USD, LiteLLM's figure) to the JSON bodies of
    /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/responses, streaming included
    (see docs/cost.md). Off: no hooks are registered and bodies are stock."""


class MetricsConfig(_Section):
    """``proxy_ext.metrics``: Prometheus metrics of the extension at ``GET /metrics``."""

    enabled: bool = True
    """Serve the metrics route."""
    require_auth: bool | None = None
    """Require a valid proxy key (any key) to read ``/metrics``. The proxy guards that path with its
    own switch, ``litellm_settings.require_auth_for_metrics_endpoint`` (default true); this key sets
    that switch (None: leave it as the LiteLLM config has it)."""


class GuardConfig(_Section):
    """``proxy_ext.guard``: a request guard in front of the whole proxy, stock routes included.

    Bodies over their limit are refused (413) before anyone reads them; bodies that stop arriving
    get a 408; the extension's JSON routes get their body checked before the proxy's auth parses it
    (see docs/operator-guide.md)."""

    enabled: bool = True
    """Install the guard. Off: request bodies reach LiteLLM unchecked, as in the stock proxy."""
    max_body_bytes: int = Field(default=33_554_432, ge=1024)
    """Largest request body on any route (default 32 MiB), unless a ``route_max_body_bytes`` prefix
    matches. The extension's own JSON routes use ``agent.limits.max_request_bytes``."""
    route_max_body_bytes: dict[str, int] = Field(default_factory=dict)
    """Body limits by path prefix (longest prefix wins), e.g. ``{"/v1/files": 536870912}`` for uploads."""
    body_timeout_s: float = Field(default=10.0, gt=0)
    """Longest silence while a request body is being received; then the request gets a 408."""
    max_json_depth: int = Field(default=64, ge=2, le=512)
    """Deepest nesting of JSON objects and arrays accepted in the body of the extension's routes."""

    @field_validator("route_max_body_bytes")
    @classmethod
    def _valid_prefixes(cls, limits: dict[str, int]) -> dict[str, int]:
        for prefix, limit in limits.items():
            if not prefix.startswith("/"):
                raise ValueError(f"{prefix!r} must be a path prefix starting with /")
            if limit < 1024:
                raise ValueError(f"{prefix}: limit {limit} must be at least 1024 bytes")
        return limits


class ReadyConfig(_Section):
    """``proxy_ext.ready``: the GET /ready health check."""

    cache_s: float = Field(default=1.0, ge=0)
    """Dependency checks are re-run at most this often; calls in between reuse the last result."""
    check_timeout_s: float = Field(default=1.0, gt=0)
    """Timeout for one dependency check (e.g. reaching the tool host)."""
    required: list[Literal["router", "traces", "tool_host", "exec_tools", "exec_isolation", "codex_cli"]] = Field(default_factory=lambda: ["router"])
    """Checks whose failure makes GET /ready answer 503 (the router always is). Any other failing
    check leaves the proxy ready, reported as ``"status": "degraded"``."""


class ScaleConfig(_Section):
    """``proxy_ext.scale``: one proxy across workers and instances (see docs/operator-guide.md,
    "Running several workers and instances").

    Run slots are per instance: with ``--num_workers N`` the workers share them through a small
    locked state file (dead workers' slots come back). Redis adds a limit across instances."""

    max_concurrent_runs_per_key: int | None = Field(default=None, ge=1)
    """Runs one API key may have in progress at once (None: only ``agent.limits.max_concurrent_runs``
    applies). Per instance; across instances too when Redis is configured."""
    global_max_concurrent_runs: int | None = Field(default=None, ge=1)
    """Runs in progress across every instance sharing the Redis at ``redis_url`` (None: no global
    limit). Slots are leases that expire ``lease_ttl_s`` after their instance stops renewing them."""
    redis_url: str | None = None
    """Redis for the global limit, e.g. ``redis://host:6379/0`` or ``os.environ/REDIS_URL`` (None:
    LiteLLM's variables ``REDIS_URL``, else ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``)."""
    redis_key_prefix: str = Field(default="proxy_ext:runs", min_length=1)
    """Prefix of the Redis keys holding the leases (instances sharing it share the limit)."""
    lease_ttl_s: float = Field(default=30.0, ge=2, le=3600)
    """A lease not renewed for this long is free again (an instance renews its leases every third of it)."""
    redis_timeout_s: float = Field(default=0.5, gt=0, le=10)
    """Socket timeout of each Redis call (slots are taken on the event loop: keep it short)."""
    on_redis_error: Literal["reject", "allow"] = "reject"
    """When Redis cannot be reached: ``reject`` answers 503, ``allow`` starts the run (the global
    limit is then not enforced) and logs a warning."""
    state_dir: str | None = None
    """Directory of the per-instance state (run slots, Prometheus files) with ``--num_workers`` > 1
    (None: the system temp directory)."""
    multiprocess_metrics: bool = True
    """With ``--num_workers`` > 1, switch prometheus_client to multiprocess mode so one scrape of any
    worker shows the whole instance (unless ``PROMETHEUS_MULTIPROC_DIR`` is already set)."""

    @model_validator(mode="after")
    def _redis_for_global_limit(self) -> "ScaleConfig":
        if self.global_max_concurrent_runs is not None and not (self.redis_url or os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST")):
            raise ValueError("scale.global_max_concurrent_runs needs Redis: set scale.redis_url (or REDIS_URL / REDIS_HOST)")
        return self


class CodexAgentCliConfig(_Section):
    """CLI mode of the codex-agent provider (``codex exec --json``)."""

    binary: str = "codex"
    """Path or name of the codex executable."""
    workspace: str | None = None
    """Working directory passed as ``--cd`` (default: a fresh temporary directory per call)."""
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "read-only"
    """codex ``--sandbox`` mode."""
    model: str | None = None
    """``-m`` passed to codex (None: codex's own default)."""
    config_overrides: list[str] = Field(default_factory=list)
    """Extra ``-c key=value`` overrides."""
    timeout_s: float = Field(default=300.0, gt=0)
    """Kill the codex process group after this many seconds."""
    env_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_ALLOWLIST))
    """Environment variables passed to codex; everything else is withheld."""
    extra_env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for codex (values may be ``os.environ/NAME``)."""
    max_output_bytes: int = Field(default=16 * 1024 * 1024, ge=4096)
    """Largest JSONL output (stdout) one codex run may produce; beyond it the run is killed and fails."""
    kill_grace_s: float = Field(default=2.0, ge=0)
    """On timeout or disconnect, SIGTERM the process group, then SIGKILL after this many seconds."""


class CodexAgentConfig(_Section):
    """``proxy_ext.providers.codex_agent``."""

    enabled: bool = False
    """Allow the provider to run (also on when ``LITELLM_ENABLE_CODEX_AGENT=1``)."""
    mode: Literal["http", "cli"] = "http"
    """Mode of codex models whose ``litellm_params.codex_agent.mode`` chooses none; the provider name
    (``codex-agent`` or ``codex_cli_agent``) never implies one."""
    api_base: str | None = None
    """HTTP mode base URL (``CODEX_AGENT_API_BASE`` when unset)."""
    api_key: str | None = None
    """HTTP mode bearer key (``CODEX_AGENT_API_KEY`` when unset)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """HTTP mode read timeout."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """HTTP mode connect timeout."""
    max_connections: int = Field(default=50, ge=1)
    """HTTP mode connection pool size (connections are reused across calls)."""
    cli: CodexAgentCliConfig = Field(default_factory=CodexAgentCliConfig)
    """CLI mode settings."""

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class ProvidersConfig(_Section):
    """``proxy_ext.providers``."""

    codex_agent: CodexAgentConfig = Field(default_factory=CodexAgentConfig)
    """The codex-agent provider."""


class ProxyExtConfig(_Section):
    """The ``proxy_ext:`` section of proxy_config.yaml."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    """POST /agent/run."""
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    """Agent tools."""
    traces: TracesConfig = Field(default_factory=TracesConfig)
    """Run traces."""
    cost: CostConfig = Field(default_factory=CostConfig)
    """Cost-augmented JSON."""
    runs: RunsConfig = Field(default_factory=RunsConfig)
    """Durable agent runs."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Prometheus metrics."""
    ready: ReadyConfig = Field(default_factory=ReadyConfig)
    """GET /ready."""
    guard: GuardConfig = Field(default_factory=GuardConfig)
    """The request guard."""
    scale: ScaleConfig = Field(default_factory=ScaleConfig)
    """Limits and metrics across workers and instances."""
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    """Model providers."""


# ------------------------------------------------------------------------------------------ loading

_TRUE = {"1", "true", "yes", "on"}


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _resolve_env_refs(value: Any, env: Mapping[str, str], where: str = "proxy_ext") -> Any:
    """Replace ``os.environ/NAME`` strings (LiteLLM's convention) with the variable's value."""
    if isinstance(value, dict):
        return {k: _resolve_env_refs(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env_refs(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} (named as os.environ/{name}) is not set")
        return env[name]
    return value


def apply_environment(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Merge the seed's environment variables into a raw ``proxy_ext:`` mapping.

    - ``MINI_AGENT_STORE_TRACES=1`` turns traces on (either it or ``traces.enabled`` is enough);
      ``MINI_AGENT_STORE_PATH`` sets the trace file and wins over ``traces.path``.
    - ``CODEX_AGENT_API_BASE`` / ``CODEX_AGENT_API_KEY`` fill ``providers.codex_agent.api_base`` /
      ``api_key`` when the config leaves them unset.
    - ``LITELLM_ENABLE_CODEX_AGENT=1`` turns ``providers.codex_agent.enabled`` on.
    """
    data = {k: v for k, v in raw.items()}

    def section(*path: str) -> dict[str, Any]:
        node = data
        for key in path:
            child = node.get(key)
            child = dict(child) if isinstance(child, dict) else ({} if child is None else child)
            if not isinstance(child, dict):  # leave wrong types for pydantic to report
                return {}
            node[key] = child
            node = child
        return node

    if _env_flag(env, "MINI_AGENT_STORE_TRACES"):
        section("traces")["enabled"] = True
    if env.get("MINI_AGENT_STORE_PATH"):
        section("traces")["path"] = env["MINI_AGENT_STORE_PATH"]
    codex = None
    if env.get("CODEX_AGENT_API_BASE") or env.get("CODEX_AGENT_API_KEY") or _env_flag(env, "LITELLM_ENABLE_CODEX_AGENT"):
        codex = section("providers", "codex_agent")
    if codex is not None:
        if env.get("CODEX_AGENT_API_BASE") and not codex.get("api_base"):
            codex["api_base"] = env["CODEX_AGENT_API_BASE"]
        if env.get("CODEX_AGENT_API_KEY") and not codex.get("api_key"):
            codex["api_key"] = env["CODEX_AGENT_API_KEY"]
        if _env_flag(env, "LITELLM_ENABLE_CODEX_AGENT"):
            codex["enabled"] = True
    return data


def _describe_allowed(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "this key is not part of the schema; see docs/config.md for the allowed keys"
    if kind == "literal_error" and "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    for bound, words in (("gt", "greater than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most")):
        if bound in ctx:
            return f"allowed: a number {words} {ctx[bound]}"
    return error.get("msg", "invalid value")


def format_validation_error(exc: ValidationError, prefix: str = "proxy_ext") -> str:
    """One line per problem: the dotted key, the bad value and what is allowed."""
    lines = [f"invalid {prefix}: section ({exc.error_count()} problem{'s' if exc.error_count() != 1 else ''}):"]
    for error in exc.errors():
        loc = ".".join(str(part) for part in (prefix, *error["loc"]))
        value = error.get("input")
        shown = "<section>" if isinstance(value, dict) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if error.get("type") in {"value_error", "assertion_error"}:
            lines.append(f"  - {loc}: {error['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  - {loc} = {shown}: {error['msg']}; {_describe_allowed(error)}")
    return "\n".join(lines)


def parse_config(raw: Any, env: Mapping[str, str] | None = None) -> ProxyExtConfig:
    """Validate a raw ``proxy_ext:`` mapping (None means the section is absent: all defaults).

    Raises :class:`ConfigError` with a message naming each bad key, its value and what is allowed.
    """
    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid proxy_ext: section: expected a mapping of keys, got {type(raw).__name__} {raw!r}")
    data = apply_environment(_resolve_env_refs(raw, env), env)
    try:
        return ProxyExtConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def agent_model_names(document: Mapping[str, Any]) -> set[str]:
    """``model_name``s of the model_list that serve an agent profile (``litellm_params.model:
    mini-agent/<profile>``), e.g. ``agent-demo``."""
    names = set()
    for entry in document.get("model_list") or []:
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        model = params.get("model") if isinstance(params, dict) else None
        if isinstance(model, str) and model.startswith("mini-agent/") and isinstance(entry.get("model_name"), str):
            names.add(entry["model_name"])
    return names


def _check_no_agent_aliases(document: Mapping[str, Any], settings: "ProxyExtConfig") -> None:
    aliases = agent_model_names(document)
    for where, model in settings.agent.named_models():
        if model in aliases:
            raise ConfigError(f"{where} names the model {model!r}, which the model_list routes to an agent profile: "
                              "the agent cannot use an agent profile as its model (that would recurse); "
                              "name a model of the model_list")


def load_config_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], ProxyExtConfig]:
    """Read a LiteLLM YAML config file; return the whole mapping and the validated ``proxy_ext:`` section."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {file} must hold a mapping at the top level")
    settings = parse_config(document.get("proxy_ext"), env)
    _check_no_agent_aliases(document, settings)
    theirs = (document.get("litellm_settings") or {}).get("require_auth_for_metrics_endpoint")
    ours = settings.metrics.require_auth
    if ours is not None and theirs is not None and bool(theirs) != ours:
        raise ConfigError(f"proxy_ext.metrics.require_auth ({ours}) contradicts litellm_settings.require_auth_for_metrics_endpoint "
                          f"({theirs}); both set the one /metrics auth switch: keep one of them")
    return document, settings
