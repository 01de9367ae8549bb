"""The whole ``proxy_ext:`` config section as one pydantic schema.

LiteLLM ignores unknown top-level config sections, so proxy_ext reads ``proxy_ext:`` from the same
YAML file the proxy was started with and validates it here. Every limit has a default and a key.
Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.

The section classes live in the private package ``proxy_ext._config`` (agent, tools, other
sections); this module is the one public import path and re-exports every name.

A few environment variables (named by the seed project) are read through the same layer, see
:func:`apply_environment`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, Field, ValidationError

from proxy_ext._config.agent import AgentBudget, AgentConfig, AgentLimits, AgentProfile
from proxy_ext._config.base import ConfigError, _Section
from proxy_ext._config.environment import FLAG_ON, environment_notes
from proxy_ext._config.hints import allowed_for_type, did_you_mean
from proxy_ext._config.otel import OtelConfig
from proxy_ext._config.scale import ScaleConfig
from proxy_ext._config.sections import (
    CodexAgentCliConfig,
    CodexAgentConfig,
    CostConfig,
    GuardConfig,
    MetricsConfig,
    ProvidersConfig,
    ReadyConfig,
    RunsConfig,
    TracesConfig,
)
from proxy_ext._config.tools import ExecLimits, ExecToolConfig, HttpToolConfig, McpToolConfig, ToolsConfig

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
    "OtelConfig",
    "ProvidersConfig",
    "ProxyExtConfig",
    "ReadyConfig",
    "RunsConfig",
    "ScaleConfig",
    "ToolsConfig",
    "TracesConfig",
    "agent_model_names",
    "apply_environment",
    "environment_warnings",
    "format_validation_error",
    "load_config_file",
    "parse_config",
]


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
    scale: ScaleConfig = Field(default_factory=ScaleConfig)
    """Limits and metrics across workers and instances."""
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    """Prometheus metrics."""
    ready: ReadyConfig = Field(default_factory=ReadyConfig)
    """GET /ready."""
    guard: GuardConfig = Field(default_factory=GuardConfig)
    """The request guard."""
    providers: ProvidersConfig = Field(default_factory=ProvidersConfig)
    """Model providers."""


# ------------------------------------------------------------------------------------------ loading

_TRUE = FLAG_ON


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


def environment_warnings(document: Mapping[str, Any], env: Mapping[str, str] | None = None) -> list[str]:
    """What to tell an operator about the fork's environment variables against this config's
    ``proxy_ext:`` section (both set to different values, switch values it does not understand);
    see :mod:`proxy_ext._config.environment`."""
    env = os.environ if env is None else env
    try:
        raw = _resolve_env_refs(document.get("proxy_ext"), env)
    except ConfigError:
        return []  # reported by the validation itself
    return environment_notes(raw if isinstance(raw, dict) else {}, env)


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


def _describe_allowed(error: Mapping[str, Any], schema: type[BaseModel] | None = None) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        hint = did_you_mean(schema, error["loc"]) if schema is not None else ""
        return f"this key is not part of the schema{hint}; see docs/config.md for the allowed keys"
    if kind == "literal_error" and "expected" in ctx:
        return f"allowed: {ctx['expected']}"
    for bound, words in (("gt", "greater than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most")):
        if bound in ctx:
            return f"allowed: a number {words} {ctx[bound]}"
    return allowed_for_type(error) or "see docs/config.md"


def format_validation_error(exc: ValidationError, prefix: str = "proxy_ext", schema: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted key, the bad value and what is allowed (with ``schema``,
    the class validated: unknown keys get the key they were probably meant as)."""
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
            lines.append(f"  - {loc} = {shown}: {error['msg']}; {_describe_allowed(error, schema)}")
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
        raise ConfigError(format_validation_error(exc, schema=ProxyExtConfig)) from None


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line 4, column 17: expected ',' or '}', but got ':' (in the flow mapping started at line 3,
    column 21)``: the file's lines, not PyYAML's ``"<unicode string>"``."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return str(exc)
    mark = exc.problem_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        started = exc.context_mark
        where += f" ({exc.context} at line {started.line + 1}, column {started.column + 1})"
    if "\\t" in (exc.problem or ""):  # PyYAML shows the character as its repr
        where += "; YAML indents with spaces, never tabs"
    return where


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
        raise ConfigError(f"config file {file} is not valid YAML: {_yaml_problem(exc)}") from None
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
