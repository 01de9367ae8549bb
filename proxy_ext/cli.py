"""``proxy-ext`` console script. ``proxy-ext doctor --config proxy_config.yaml`` checks a config
without starting the server: the LiteLLM sections proxy_ext relies on, the ``proxy_ext:`` section,
which capabilities are on, and external dependencies. Exit status 0 = no problems, 1 = problems,
2 = usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_ext.doctor_models import check_models, check_providers, provider_keys_report
from proxy_ext.config import ConfigError, environment_warnings, load_config_file
from proxy_ext.providers.registry import PROVIDERS
from proxy_ext.providers.stale import stale_lines
from proxy_ext.state import Runtime

__all__ = ["DoctorReport", "diagnose", "main"]

EXTENSION_CALLBACK = "proxy_ext.extension"


@dataclass
class DoctorReport:
    """What ``doctor`` found."""

    problems: list[str] = field(default_factory=list)
    """Things that stop proxy_ext (or the proxy) from working; exit status 1."""
    warnings: list[str] = field(default_factory=list)
    """Things worth knowing that do not stop it."""
    capabilities: dict[str, str] = field(default_factory=dict)
    """Capability → ``on (...)`` / ``off (...)``."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _model_names(document: dict[str, Any], report: DoctorReport) -> set[str]:
    names: set[str] = set()
    model_list = document.get("model_list")
    if model_list is None:
        report.warnings.append("model_list is empty: the proxy will serve no models")
        return names
    if not isinstance(model_list, list):
        report.problems.append("model_list must be a list of {model_name, litellm_params} entries")
        return names
    for index, entry in enumerate(model_list):
        if not isinstance(entry, dict) or not entry.get("model_name"):
            report.problems.append(f"model_list[{index}] has no model_name")
            continue
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not params.get("model"):
            report.problems.append(f"model_list[{index}] ({entry['model_name']}) has no litellm_params.model")
        names.add(str(entry["model_name"]))
    return names


def _check_litellm_sections(document: dict[str, Any], config_path: Path, report: DoctorReport) -> bool:
    settings = document.get("litellm_settings") or {}
    if not isinstance(settings, dict):
        report.problems.append("litellm_settings must be a mapping")
        return False
    callbacks = settings.get("callbacks") or []
    if isinstance(callbacks, str):
        callbacks = [callbacks]
    enabled = EXTENSION_CALLBACK in callbacks
    if not enabled:
        report.warnings.append(
            f"litellm_settings.callbacks does not contain {EXTENSION_CALLBACK!r}: the proxy runs stock "
            "(no /agent/run, /ready, cost hooks)"
        )
    if callbacks.count(EXTENSION_CALLBACK) > 1:
        report.warnings.append(f"{EXTENSION_CALLBACK!r} is listed more than once in litellm_settings.callbacks")
    for entry in settings.get("custom_provider_map") or []:
        if not isinstance(entry, dict) or not entry.get("provider") or not entry.get("custom_handler"):
            report.problems.append("litellm_settings.custom_provider_map entries need provider and custom_handler")
            continue
        handler = str(entry["custom_handler"])
        module_name, _, attribute = handler.rpartition(".")
        shadow = config_path.parent.joinpath(*module_name.split(".")).with_suffix(".py")
        if shadow.exists():
            report.warnings.append(
                f"custom_handler {handler}: LiteLLM will exec {shadow} as a separate module instance "
                "(file next to the config wins over the installed package)"
            )
        if entry["provider"] in PROVIDERS:
            continue  # stale_lines says what to do with it
        try:
            module = importlib.import_module(module_name)
            getattr(module, attribute)
        except Exception as exc:  # report any import failure, whatever it is
            report.problems.append(f"custom_handler {handler} cannot be loaded: {type(exc).__name__}: {exc}")
    report.problems.extend(stale_lines(document, config_path.parent))
    _check_master_key(document, report)
    return enabled


_NO_MASTER_KEY = ("the proxy refuses to start without a strong master key (`make run` keeps a generated one in .env, "
                  "and `make doctor` reads it from there)")


def _check_master_key(document: dict[str, Any], report: DoctorReport) -> None:
    general = document.get("general_settings") or {}
    master_key = general.get("master_key") if isinstance(general, dict) else None
    if isinstance(master_key, str) and master_key.startswith("os.environ/"):
        var = master_key.removeprefix("os.environ/")
        if not os.environ.get(var):
            report.warnings.append(f"no master key is set: general_settings.master_key names ${var}, which is not set in this "
                                   f"environment; {_NO_MASTER_KEY}")
    elif not master_key and not os.environ.get("LITELLM_MASTER_KEY"):
        report.warnings.append(f"no master key is set (general_settings.master_key or LITELLM_MASTER_KEY); {_NO_MASTER_KEY}")
    _check_known_master_key(master_key, report)


def _check_known_master_key(master_key: Any, report: DoctorReport) -> None:
    from proxy_ext.litellm_adapter.keys import publicly_known_master_key

    where, value = "general_settings.master_key", master_key
    if isinstance(master_key, str) and master_key.startswith("os.environ/"):
        where, value = f"${master_key.removeprefix('os.environ/')}", os.environ.get(master_key.removeprefix("os.environ/"))
    elif not master_key:
        where, value = "$LITELLM_MASTER_KEY", os.environ.get("LITELLM_MASTER_KEY")
    if isinstance(value, str) and value and publicly_known_master_key(value):
        report.warnings.append(f"the master key ({where}) is LiteLLM's publicly known example key: the proxy refuses to start "
                               "with it; set a random one, e.g. sk- and the output of "
                               "`python3 -c 'import secrets; print(secrets.token_hex(24))'`")


def _check_dependencies(runtime: Runtime, names: set[str], report: DoctorReport) -> None:
    check_models(runtime, names, report)
    _check_tools(runtime, report)
    _check_codex(runtime, report)


def _check_tools(runtime: Runtime, report: DoctorReport) -> None:
    from proxy_ext import ready

    settings = runtime.settings
    if settings.traces.enabled:
        problem = ready.trace_dir_problem(runtime)
        if problem:
            report.problems.append(f"traces: {problem} ({runtime.resolve_path(settings.traces.path)})")
    if settings.tools.exec.enabled:
        problem = ready.exec_problem(runtime)
        if problem:
            report.problems.append(f"tools.exec: {problem}")
        if settings.tools.exec.shell_mode == "unrestricted":
            report.warnings.append("tools.exec.shell_mode is 'unrestricted': exec_shell runs any command line")
        isolation = ready.exec_isolation(runtime)
        if settings.tools.exec.isolation == "auto" and getattr(isolation, "mode") != "bwrap":
            report.warnings.append(f"tools.exec.isolation: {getattr(isolation, 'reason')} (install bubblewrap: apt-get install bubblewrap)")
    if settings.tools.mcp.enabled:
        from proxy_ext.tools.mcp.doctor import mcp_report

        _, warnings, problems = mcp_report(runtime.document, settings.tools.mcp)
        report.warnings.extend(warnings)
        report.problems.extend(problems)
    http = settings.tools.http
    if http.base_url:
        problem = asyncio.run(ready.tool_host_problem(http.base_url, dict(http.headers), settings.ready.check_timeout_s))
        if problem:
            report.problems.append(f"tools.http: {problem} ({http.base_url})")
    from proxy_ext.litellm_adapter import version_problem

    problem = version_problem()
    if problem:
        report.warnings.append(problem)


def _check_codex(runtime: Runtime, report: DoctorReport) -> None:
    from proxy_ext import ready

    settings = runtime.settings
    codex = settings.providers.codex_agent
    from proxy_ext.providers import registry

    legacy = registry.legacy_cli_models(runtime.document, codex)
    if legacy:
        report.warnings.append(f"providers.codex_agent: {registry.legacy_cli_message(legacy)}")
    report.warnings.extend(registry.codex_warnings(runtime.document, codex))
    report.warnings.extend(environment_warnings(runtime.document))
    if ready.codex_cli_in_use(runtime):
        for binary, names in ready.codex_cli_missing(runtime).items():
            report.problems.append(f"providers.codex_agent.cli: codex binary not found ({binary}), needed by model {', '.join(names)}")
        if codex.cli.sandbox == "danger-full-access":
            report.warnings.append("providers.codex_agent.cli.sandbox is 'danger-full-access': codex runs commands without a sandbox")
    try:
        from proxy_ext.providers import codex_agent  # type: ignore[attr-defined]

        extra = getattr(codex_agent, "doctor_problems", None)
        if extra is not None and codex.enabled:
            report.problems.extend(f"providers.codex_agent: {p}" for p in extra(settings, runtime) if p not in " ".join(report.problems))
    except ImportError:
        pass


def _check_otel(runtime: Runtime, report: DoctorReport) -> None:
    from proxy_ext.agent import otel_export

    if otel_export.is_enabled(runtime.settings.traces.otel):
        problem = otel_export.import_problem()
        if problem:
            report.problems.append(f"traces.otel: {problem}")
        elif runtime.settings.traces.otel.capture_content:
            report.warnings.append("traces.otel.capture_content is on: prompts, answers and tool arguments are exported with the spans")


def _otel_line(runtime: Runtime) -> str:
    from proxy_ext.agent import otel_export

    config = runtime.settings.traces.otel
    if not otel_export.is_enabled(config):
        return "off (set traces.otel or OTEL_EXPORTER_OTLP_ENDPOINT)"
    resolved = otel_export.resolve(config)
    service = resolved.service_name or os.environ.get("OTEL_SERVICE_NAME") or otel_export.DEFAULT_SERVICE_NAME
    content = "with content" if config.capture_content else "no content"
    return f"on (OTLP/HTTP to {resolved.endpoint}, service {service}, {content})"


def _mini_agent_models(runtime: Runtime) -> list[str]:
    models = []
    for entry in runtime.document.get("model_list") or []:
        model = ((entry or {}).get("litellm_params") or {}).get("model") if isinstance(entry, dict) else None
        if isinstance(model, str) and model.startswith("mini-agent/"):
            models.append(model)
    return models


def _isolation_line(runtime: Runtime) -> str:
    from proxy_ext.ready import exec_isolation

    return exec_isolation(runtime).describe()  # type: ignore[attr-defined]


def _check_scale(runtime: Runtime, report: DoctorReport) -> str:
    from proxy_ext.scale.doctor import scale_report

    line, warnings, problems = scale_report(runtime.settings)
    report.warnings.extend(warnings)
    report.problems.extend(problems)
    return line


def _mcp_line(runtime: Runtime) -> str:
    from proxy_ext.tools.mcp.doctor import mcp_report

    return mcp_report(runtime.document, runtime.settings.tools.mcp)[0]


def _codex_line(runtime: Runtime) -> str:
    from proxy_ext.providers import registry

    codex = runtime.settings.providers.codex_agent
    if codex.enabled:
        return f"on (mode={codex.mode})"
    return f"off (mode={codex.mode}{registry.codex_off_detail(runtime.document, codex)})"


def _metrics_auth(runtime: Runtime) -> bool:
    """Whether ``/metrics`` needs a key: ``proxy_ext.metrics.require_auth`` when set, else LiteLLM's
    own switch as the config has it (``require_auth_for_metrics_endpoint``, on unless ``false``)."""
    ours = runtime.settings.metrics.require_auth
    if ours is not None:
        return ours
    litellm_settings = runtime.document.get("litellm_settings")
    theirs = litellm_settings.get("require_auth_for_metrics_endpoint") if isinstance(litellm_settings, dict) else None
    return theirs is not False


def _capabilities(runtime: Runtime, extension_on: bool, report: DoctorReport) -> None:
    from proxy_ext import metrics

    s = runtime.settings
    on = extension_on

    def state(flag: bool, detail: str = "") -> str:
        return ("on" if flag else "off") + (f" ({detail})" if detail else "")

    served = _mini_agent_models(runtime)
    report.capabilities = {
        "extension": state(on, "callbacks line present" if on else "add proxy_ext.extension to litellm_settings.callbacks"),
        "agent (/agent/run)": state(on and s.agent.enabled, f"default_model={s.agent.default_model}, backend={s.agent.backend}"),
        "ready (/ready)": state(on),
        "metrics (/metrics)": state(
            on and s.metrics.enabled and metrics.AVAILABLE,
            ("auth required" if _metrics_auth(runtime) else "no auth") if metrics.AVAILABLE else "prometheus_client not installed",
        ),
        "cost in responses": state(on and s.cost.enabled),
        "traces": state(on and s.traces.enabled, str(runtime.resolve_path(s.traces.path)) if s.traces.enabled else ""),
        "otel traces": _otel_line(runtime) if on else state(False),
        "exec tools": state(s.tools.exec.enabled, f"shell_mode={s.tools.exec.shell_mode}" if s.tools.exec.enabled else ""),
        **({"exec isolation": _isolation_line(runtime)} if s.tools.exec.enabled else {}),
        "http tool host": state(bool(s.tools.http.base_url), s.tools.http.base_url or ""),
        "mcp tools": state(on and s.tools.mcp.enabled and bool(_mcp_line(runtime)), _mcp_line(runtime)),
        "agent as a model (mini-agent/*)": state(on and bool(served), ", ".join(served)),
        "codex-agent provider": _codex_line(runtime),
        **({"run limits": _check_scale(runtime, report)} if on and s.agent.enabled else {}),
    }
    keys, warnings = provider_keys_report(runtime.document, s)
    report.warnings.extend(warnings if on and s.agent.enabled else [])
    if keys:
        report.capabilities["provider keys"] = keys


def diagnose(config_path: str | os.PathLike[str]) -> DoctorReport:
    """Check ``config_path`` as the proxy would load it, without starting the server."""
    report = DoctorReport()
    path = Path(config_path)
    try:
        document, settings = load_config_file(path)
    except ConfigError as exc:
        report.problems.append(str(exc))
        return report
    runtime = Runtime(settings=settings, config_path=path.resolve(), document=document)
    names = _model_names(document, report)
    extension_on = _check_litellm_sections(document, path.resolve(), report)
    check_providers(document, extension_on, report)
    _check_dependencies(runtime, names, report)
    _check_otel(runtime, report)
    _capabilities(runtime, extension_on, report)
    return report


def _print_report(report: DoctorReport, config: str) -> None:
    print(f"proxy-ext doctor: {config}")
    if report.capabilities:
        print("capabilities:")
        for name, state in report.capabilities.items():
            print(f"  {name:<22} {state}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("ok: no problems found" if report.ok else f"FAILED: {len(report.problems)} problem(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proxy-ext", description="proxy_ext utilities")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="validate a proxy config without starting the server")
    doctor.add_argument("--config", default="proxy_config.yaml", help="LiteLLM proxy config file (default: proxy_config.yaml)")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from proxy_ext.litellm_adapter.keys import load_litellm_dotenv

        load_litellm_dotenv()  # the environment the proxy will have: LiteLLM reads .env itself
        report = diagnose(args.config)
        _print_report(report, args.config)
        return 0 if report.ok else 1
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
