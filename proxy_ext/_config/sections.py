"""The other ``proxy_ext:`` sections: traces, cost, metrics, guard, ready, providers.

A new top-level section class goes here (after the section it sits next to in ``ProxyExtConfig``),
and its field on :class:`proxy_ext.config.ProxyExtConfig`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from proxy_ext._config.base import _Section, http_url
from proxy_ext._config.otel import OtelConfig
from proxy_ext._config.tools import DEFAULT_ENV_ALLOWLIST

__all__ = [
    "CodexAgentCliConfig",
    "CodexAgentConfig",
    "CostConfig",
    "GuardConfig",
    "MetricsConfig",
    "ProvidersConfig",
    "ReadyConfig",
    "RunsConfig",
    "TracesConfig",
]


class TracesConfig(_Section):
    """``proxy_ext.traces``: one JSONL record per agent run."""

    enabled: bool = False
    """Write traces (also on when ``MINI_AGENT_STORE_TRACES=1``)."""
    path: str = "traces/agent_runs.jsonl"
    """JSONL file (``MINI_AGENT_STORE_PATH`` overrides); relative paths are relative to the config file."""
    redact_patterns: list[str] = Field(default_factory=list)
    """Extra regular expressions whose matches are replaced by ``[REDACTED]`` in traces."""
    otel: OtelConfig = Field(default_factory=OtelConfig)
    """OpenTelemetry spans (independent of the JSONL file: ``enabled`` above is for the file only)."""

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
    redis_timeout_s: float = Field(default=1.0, gt=0, le=30)
    """``store: redis``: the longest one store call may wait for Redis (connect or answer). A Redis that
    does not answer in time (down, hung, cut off) counts as unreachable: ``/agent/runs`` answers 503
    with ``Retry-After`` until it is back, without waiting again for every request meanwhile."""
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
    matches. The extension's own JSON routes and requests to ``mini-agent`` models use
    ``agent.limits.max_request_bytes``."""
    route_max_body_bytes: dict[str, int] = Field(default_factory=dict)
    """Body limits by path prefix (longest prefix wins), e.g. ``{"/v1/files": 536870912}`` for uploads."""
    body_timeout_s: float = Field(default=10.0, gt=0)
    """Longest silence while a request body is being received; then the request gets a 408."""
    body_deadline_s: float = Field(default=120.0, gt=0)
    """Longest time a whole request body may take to arrive, however steadily it trickles in (a
    byte every few seconds never trips ``body_timeout_s``); then the request gets a 408. Raise it
    for large uploads over slow links."""
    max_json_depth: int = Field(default=64, ge=2, le=512)
    """Deepest nesting of JSON objects and arrays accepted in the body of the extension's routes."""
    max_json_elements: int = Field(default=1_000_000, ge=1000)
    """Most JSON elements (counted as the ``,``, ``[`` and ``{`` bytes of the body, an upper bound)
    a JSON body of LiteLLM's OpenAI routes and the extension's routes may hold; more is a 413 before
    anyone parses it. Parsed, every element costs the proxy 50-200 bytes: 32 MiB of ``[],`` is
    11 million lists, 2.6 GB of memory that LiteLLM never gives back. OpenAI's own request limits
    stay far below the default (300 000 tokens per embeddings request)."""
    max_client_retries: int = Field(default=10, ge=0, le=1000)
    """Most retries one request may ask for: the ``x-litellm-num-retries`` header and the body's
    ``num_retries`` / ``max_retries`` on LiteLLM's OpenAI routes (the header on the extension's
    routes too: a run's model calls carry it); more is a 400. LiteLLM retries a failing call with
    backoff up to 8 s apart as often as asked, and goes on after the client has hung up. The
    operator's own retry settings (``router_settings.num_retries``, a model's ``num_retries``) are
    not limited by this."""

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
    required: list[Literal["router", "traces", "otel", "tool_host", "exec_tools", "exec_isolation", "codex_cli"]] = Field(default_factory=lambda: ["router"])  # type: ignore[arg-type]
    """Checks whose failure makes GET /ready answer 503 (the router always is). Any other failing
    check leaves the proxy ready, reported as ``"status": "degraded"``."""


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
        return http_url(value)


class ProvidersConfig(_Section):
    """``proxy_ext.providers``."""

    codex_agent: CodexAgentConfig = Field(default_factory=CodexAgentConfig)
    """The codex-agent provider."""

