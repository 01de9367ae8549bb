"""`proxy-ext doctor`: validates a config without starting the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy_ext.cli import diagnose, main
from tests.harness import REPO_ROOT

CLI = str(Path(sys.executable).with_name("proxy-ext"))


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "proxy_config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def base(**proxy_ext) -> dict:
    return {
        "model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}],
        "litellm_settings": {
            "callbacks": ["proxy_ext.extension"],
            "custom_provider_map": [{"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"}],
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": proxy_ext,
    }


def test_default_config_is_healthy_and_lists_capabilities(capsys, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    assert main(["doctor", "--config", str(REPO_ROOT / "proxy_config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ok: no problems found" in out
    assert "extension              on" in out and "exec tools             off" in out


@pytest.mark.integration  # runs the installed console script (imports LiteLLM in a subprocess)
def test_console_script_exit_status(tmp_path):
    bad = write(tmp_path, base(agent={"default_model": "missing-model"}))
    result = subprocess.run([CLI, "doctor", "--config", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "agent.default_model = 'missing-model' is not a model_name in model_list" in result.stdout


def test_unreachable_tool_host_and_unwritable_traces_are_problems(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = diagnose(write(tmp_path, base(tools={"http": {"base_url": "http://127.0.0.1:9"}}, traces={"enabled": True, "path": str(blocker / "t.jsonl")})))
    text = "\n".join(report.problems)
    assert "tools.http: tool host unreachable" in text
    assert "traces: trace directory not writable" in text


def test_missing_callbacks_line_is_a_warning_and_capabilities_off(tmp_path):
    document = base()
    document["litellm_settings"].pop("callbacks")
    report = diagnose(write(tmp_path, document))
    assert report.ok
    assert any("does not contain 'proxy_ext.extension'" in w for w in report.warnings)
    assert report.capabilities["extension"].startswith("off")


def test_broken_custom_handler_and_model_list(tmp_path):
    document = base()
    document["litellm_settings"]["custom_provider_map"].append({"provider": "x", "custom_handler": "no_such_pkg.handler"})
    document["model_list"].append({"model_name": "nomodel", "litellm_params": {}})
    report = diagnose(write(tmp_path, document))
    assert any("no_such_pkg.handler cannot be loaded" in p for p in report.problems)
    assert any("(nomodel) has no litellm_params.model" in p for p in report.problems)


def test_unreadable_and_non_yaml_files(tmp_path):
    assert "cannot read config file" in diagnose(tmp_path / "absent.yaml").problems[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n")
    assert "is not valid YAML" in diagnose(broken).problems[0]


def test_unrestricted_shell_is_flagged(tmp_path):
    report = diagnose(write(tmp_path, base(tools={"exec": {"enabled": True, "shell_mode": "unrestricted"}})))
    assert report.ok
    assert any("unrestricted" in w for w in report.warnings)
    assert report.capabilities["exec tools"] == "on (shell_mode=unrestricted)"


def test_doctor_checks_mini_agent_models_have_profiles(tmp_path, monkeypatch):
    import yaml

    from proxy_ext.cli import diagnose

    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    config = {
        "model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
                       {"model_name": "mini-agent/known", "litellm_params": {"model": "mini-agent/known"}},
                       {"model_name": "mini-agent/missing", "litellm_params": {"model": "mini-agent/missing"}}],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"], "custom_provider_map": [
            {"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"},
            {"provider": "mini-agent", "custom_handler": "proxy_ext.providers.mini_agent.handler"}]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"agent": {"default_model": "echo", "profiles": {"known": {"model": "echo"}}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    report = diagnose(path)
    assert report.problems == ["model_list: 'mini-agent/missing' needs a profile 'missing' in proxy_ext.agent.profiles"]
    assert report.capabilities["agent as a model (mini-agent/*)"].startswith("on (mini-agent/known, mini-agent/missing")


def _provider_warnings(report) -> list[str]:
    return [w for w in report.warnings if "which is not registered" in w]


def test_models_naming_unregistered_providers_are_warned_about(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    document = {
        "model_list": [
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
            {"model_name": "codex", "litellm_params": {"model": "codex_cli_agent/x", "api_base": "http://127.0.0.1:9/v1"}},
            {"model_name": "typo", "litellm_params": {"model": "opneai/gpt-4o"}},
            {"model_name": "real", "litellm_params": {"model": "openai/gpt-4o"}},
            {"model_name": "bare", "litellm_params": {"model": "gpt-4o"}},
        ],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},  # registers echo and codex_cli_agent
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    warnings = _provider_warnings(diagnose(write(tmp_path, document)))
    assert len(warnings) == 1 and "typo (opneai/gpt-4o) names the provider 'opneai'" in warnings[0]

    document["litellm_settings"] = {"custom_provider_map": [{"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"}]}
    warnings = _provider_warnings(diagnose(write(tmp_path, document)))
    assert [w.split(" names")[0] for w in warnings] == ["model_list: codex (codex_cli_agent/x)", "model_list: typo (opneai/gpt-4o)"]
    assert "proxy_ext registers it when litellm_settings.callbacks contains 'proxy_ext.extension'" in warnings[0]


def test_a_model_repeating_its_provider_name_is_warned_about(tmp_path):
    document = base()
    document["model_list"].append({"model_name": "echo2", "litellm_params": {"model": "echo/echo"}})
    report = diagnose(write(tmp_path, document))
    assert report.ok
    assert [w for w in report.warnings if "repeats the provider name" in w] == [
        "model_list: echo2 (echo/echo): the model after the prefix repeats the provider name, and LiteLLM answers "
        "/v1/responses for it with a 400 (list index out of range); name it differently, e.g. echo/echo-1"]


def test_a_cli_config_for_the_old_alias_meaning_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    monkeypatch.delenv("CODEX_AGENT_API_BASE", raising=False)
    document = base(providers={"codex_agent": {"enabled": True, "cli": {"timeout_s": 60}}})
    document["model_list"] += [
        {"model_name": "old-cli", "litellm_params": {"model": "codex_cli_agent/default"}},
        {"model_name": "new-cli", "litellm_params": {"model": "codex_cli_agent/default", "codex_agent": {"mode": "cli"}}},
        {"model_name": "http", "litellm_params": {"model": "codex-agent/a", "api_base": "http://127.0.0.1:9/v1"}},
    ]
    report = diagnose(write(tmp_path, document))
    legacy = [w for w in report.warnings if "no longer implies the codex CLI" in w]
    assert len(legacy) == 1
    assert "These models now run in HTTP mode: old-cli (codex_cli_agent/default)." in legacy[0]
    assert "`codex_agent: {mode: cli}`" in legacy[0] and "new-cli" not in legacy[0]
    document["proxy_ext"]["providers"]["codex_agent"]["mode"] = "cli"  # stating the mode for the section is enough
    assert not [w for w in diagnose(write(tmp_path, document)).warnings if "no longer implies" in w]


def test_no_master_key_is_a_warning_naming_the_consequence(tmp_path, monkeypatch):
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    report = diagnose(write(tmp_path, base()))
    [warning] = [w for w in report.warnings if "master key" in w]
    assert warning.startswith("no master key is set: general_settings.master_key names $LITELLM_MASTER_KEY")
    assert "refuses to start" in warning
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    assert not [w for w in diagnose(write(tmp_path, base())).warnings if "master key" in w]


def test_the_publicly_known_master_key_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-1234")  # LiteLLM's documentation example: the proxy refuses it
    [warning] = [w for w in diagnose(write(tmp_path, base())).warnings if "master key" in w]
    assert warning.startswith("the master key ($LITELLM_MASTER_KEY) is LiteLLM's publicly known example key: "
                              "the proxy refuses to start with it")
    document = base()
    document["general_settings"]["master_key"] = "sk-1234"
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    assert any(w.startswith("the master key (general_settings.master_key) is LiteLLM's publicly known")
               for w in diagnose(write(tmp_path, document)).warnings)


def test_run_limits_are_reported_and_their_redis_checked(tmp_path):
    from tests.harness import free_port

    dead = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    report = diagnose(write(tmp_path, base(agent={"limits": {"max_concurrent_runs": 8}},
                                           scale={"max_concurrent_runs_per_key": 8, "global_max_concurrent_runs": 20, "redis_url": dead,
                                                  "state_dir": str(tmp_path / "missing")})))
    line = report.capabilities["run limits"]
    assert line.startswith("8 runs at once per instance, 8 per key, 20 across instances (Redis 127.0.0.1:")
    assert "s3cret-pw" not in line + " ".join(report.problems + report.warnings)
    assert any("max_concurrent_runs_per_key (8) is not below" in w for w in report.warnings)
    assert any(p.startswith("scale.global_max_concurrent_runs: Redis unreachable") and "503" in p for p in report.problems)
    assert any("scale.state_dir" in p for p in report.problems)

    allowed = diagnose(write(tmp_path, base(scale={"global_max_concurrent_runs": 20, "redis_url": dead, "on_redis_error": "allow"})))
    assert not [p for p in allowed.problems if "scale" in p]
    assert any("without the global limit" in w for w in allowed.warnings)
    healthy = diagnose(write(tmp_path, base()))
    assert healthy.capabilities["run limits"].endswith("runs at once per instance") and not healthy.problems


@pytest.mark.parametrize(("litellm_switch", "ours", "shown"), [
    (None, None, "on (auth required)"),  # LiteLLM's switch is on by default: a scrape without a key is a 401
    (False, None, "on (no auth)"),
    (True, None, "on (auth required)"),
    (None, False, "on (no auth)"),
    (None, True, "on (auth required)"),
])
def test_the_metrics_line_says_whether_a_scrape_needs_a_key(tmp_path, litellm_switch, ours, shown):
    document = base(**({"metrics": {"require_auth": ours}} if ours is not None else {}))
    if litellm_switch is not None:
        document["litellm_settings"]["require_auth_for_metrics_endpoint"] = litellm_switch
    assert diagnose(write(tmp_path, document)).capabilities["metrics (/metrics)"] == shown


@pytest.mark.integration  # runs the doctor in a subprocess (imports LiteLLM)
def test_the_doctor_sees_the_dotenv_file_litellm_loads_itself(tmp_path):
    # `litellm --config …` from a checkout's .venv starts with the checkout's .env loaded, no `source`
    # needed: LiteLLM's import reads the first .env above its package. The doctor run the same way
    # said "no master key is set ... the proxy refuses to start" and "codex-agent provider off".
    import litellm

    checkout = tmp_path / "checkout"
    (checkout / "site").mkdir(parents=True)
    (checkout / "site" / "litellm").symlink_to(Path(litellm.__file__).parent)  # LiteLLM as installed in checkout/site
    (checkout / ".env").write_text("LITELLM_MASTER_KEY=sk-dotenv-0123456789abcdef0123456789abcdef\n"
                                   "LITELLM_ENABLE_CODEX_AGENT=1\nCODEX_AGENT_API_BASE=http://127.0.0.1:9/v1\n")
    document = base()
    document["model_list"].append({"model_name": "codex", "litellm_params": {"model": "codex-agent/codex-1"}})
    config = write(tmp_path, document)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "CODEX_AGENT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(checkout / "site"), str(REPO_ROOT)])
    result = subprocess.run([sys.executable, "-m", "proxy_ext.cli", "doctor", "--config", str(config)], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no master key" not in result.stdout
    assert "  codex-agent provider   on (mode=http)" in result.stdout.splitlines()
