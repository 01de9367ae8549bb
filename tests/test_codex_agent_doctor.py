"""`proxy-ext doctor` and /ready checks for the codex-agent provider resolve the codex binary the
way the provider does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from proxy_ext import ready
from proxy_ext.cli import diagnose
from proxy_ext.config import parse_config
from proxy_ext.state import Runtime

FAKE_CODEX = Path(__file__).parent / "codex_fake" / "codex"


def config(tmp_path: Path, section: dict, model: str = "codex-agent/default", mode: str | None = "cli") -> Path:
    params = {"model": model, **({"codex_agent": {"mode": mode}} if mode else {})}
    document = {
        "model_list": [{"model_name": "agent", "litellm_params": params}],
        "litellm_settings": {
            "callbacks": ["proxy_ext.extension"],
            "custom_provider_map": [{"provider": p, "custom_handler": "proxy_ext.providers.codex_agent.handler"}
                                    for p in ("codex-agent", "codex_cli_agent")],
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"providers": {"codex_agent": section}},
    }
    path = tmp_path / "proxy_config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_doctor_reports_a_missing_binary_for_a_cli_model(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    report = diagnose(config(tmp_path, {"enabled": True, "cli": {"binary": "no-such-codex-binary"}}))
    assert any("codex binary not found (no-such-codex-binary)" in p for p in report.problems)


def test_doctor_accepts_a_binary_relative_to_the_config_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "codex").symlink_to(FAKE_CODEX)
    report = diagnose(config(tmp_path, {"enabled": True, "cli": {"binary": "bin/codex", "sandbox": "danger-full-access"}}))
    assert not [p for p in report.problems if "codex" in p], report.problems
    assert any("danger-full-access" in w for w in report.warnings)


def test_disabled_provider_or_http_only_models_need_no_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    missing = {"binary": "no-such-codex-binary"}
    assert not [p for p in diagnose(config(tmp_path, {"enabled": False, "cli": missing})).problems if "codex" in p]
    http_only = config(tmp_path, {"enabled": True, "api_base": "http://127.0.0.1:9/v1", "cli": missing}, model="codex-agent/a", mode=None)
    assert not [p for p in diagnose(http_only).problems if "codex" in p]


def test_ready_check_follows_cli_usage(tmp_path):
    def runtime(section, model, mode=None):
        params = {"model": model, **({"codex_agent": {"mode": mode}} if mode else {})}
        document = {"model_list": [{"model_name": "m", "litellm_params": params}]}
        return Runtime(settings=parse_config({"providers": {"codex_agent": section}}, env={}), config_path=tmp_path / "c.yaml", document=document)

    assert "codex_cli" in ready.enabled_checks(runtime({"enabled": True}, "codex-agent/x", "cli"))
    assert "codex_cli" in ready.enabled_checks(runtime({"enabled": True, "mode": "cli"}, "codex_cli_agent/x"))
    assert "codex_cli" not in ready.enabled_checks(runtime({"enabled": True}, "codex-agent/x"))
    assert "codex_cli" not in ready.enabled_checks(runtime({"enabled": True}, "codex_cli_agent/x"))  # the alias is HTTP
    assert "codex_cli" not in ready.enabled_checks(runtime({"enabled": False, "mode": "cli"}, "codex_cli_agent/x"))
    cli = {"enabled": True, "mode": "cli"}
    result = asyncio.run(ready.check_codex_cli(runtime({**cli, "cli": {"binary": "/nonexistent/codex"}}, "codex_cli_agent/x"), 1.0))
    assert not result.ok and "not found" in result.reason
    assert asyncio.run(ready.check_codex_cli(runtime({**cli, "cli": {"binary": str(FAKE_CODEX)}}, "codex_cli_agent/x"), 1.0)).ok


def test_a_models_own_binary_is_the_one_checked(tmp_path, monkeypatch):
    """A CLI model with its own ``codex_agent.cli.binary`` needs that binary, not the section's
    (``codex``, not on this PATH): /ready and doctor check each model's, and name the model."""
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")

    def runtime_with(binary: str) -> tuple[Runtime, Path]:
        path = config(tmp_path, {"enabled": True})
        document = yaml.safe_load(path.read_text())
        document["model_list"][0]["litellm_params"]["codex_agent"] = {"mode": "cli", "cli": {"binary": binary}}
        path.write_text(yaml.safe_dump(document))
        return Runtime(settings=parse_config(document["proxy_ext"], env={}), config_path=path, document=document), path

    found, path = runtime_with(str(FAKE_CODEX))
    assert asyncio.run(ready.check_codex_cli(found, 1.0)).ok
    assert not [p for p in diagnose(path).problems if "codex" in p]
    missing, path = runtime_with("/nonexistent/own-codex")
    result = asyncio.run(ready.check_codex_cli(missing, 1.0))
    assert not result.ok and result.reason == "codex binary not found: '/nonexistent/own-codex' (model agent)"
    assert any("codex binary not found (/nonexistent/own-codex), needed by model agent" in p for p in diagnose(path).problems)
