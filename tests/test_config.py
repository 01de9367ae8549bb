"""The proxy_ext: schema: defaults, error messages that name key/value/allowed, env vars."""

from __future__ import annotations

import pytest

from proxy_ext.config import ConfigError, ProxyExtConfig, parse_config


def test_absent_section_gives_defaults():
    settings = parse_config(None, env={})
    assert settings == ProxyExtConfig()
    assert settings.agent.max_iterations == 8
    assert settings.tools.exec.enabled is False
    assert settings.tools.exec.max_output_bytes == 65536
    assert settings.cost.enabled is True
    assert settings.traces.enabled is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"agent": {"max_iterations": 0}}, ["proxy_ext.agent.max_iterations", "= 0", "at least 1"]),
        ({"agent": {"max_iteration": 3}}, ["proxy_ext.agent.max_iteration", "= 3", "not part of the schema"]),
        ({"agent": {"backend": "ftp"}}, ["proxy_ext.agent.backend", "'ftp'", "'local', 'http' or 'echo'"]),
        ({"tools": {"exec": {"timeout_s": "soon"}}}, ["proxy_ext.tools.exec.timeout_s", "'soon'", "valid number"]),
        ({"tools": {"http": {"base_url": "ftp://x"}}}, ["proxy_ext.tools.http.base_url", "http:// or https://"]),
        ({"tools": {"exec": {"shell_mode": "yolo"}}}, ["shell_mode", "'allowlist' or 'unrestricted'"]),
        ({"traces": {"redact_patterns": ["("]}}, ["proxy_ext.traces.redact_patterns", "not a valid regular expression"]),
        ({"cost": {"enabled": "maybe"}}, ["proxy_ext.cost.enabled", "'maybe'"]),
        ({"agent": {"max_iterations": 50}}, ["agent.max_iterations (50) exceeds agent.limits.max_iterations (32)"]),
        ({"agent": {"profiles": {"p": {"model": "mini-agent/p"}}}}, ["agent.profiles.p", "recurse"]),
        ({"surprise": {}}, ["proxy_ext.surprise", "not part of the schema"]),
    ],
)
def test_invalid_values_are_named_with_what_is_allowed(raw, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, env={})
    message = str(info.value)
    assert message.startswith("invalid proxy_ext: section")
    for fragment in expected:
        assert fragment in message, message


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["agent"], env={})


def test_several_problems_are_all_reported():
    with pytest.raises(ConfigError) as info:
        parse_config({"agent": {"max_iterations": -1, "backend": "x"}, "cost": {"enabled": 3}}, env={})
    assert "3 problems" in str(info.value)


def test_seed_environment_variables_go_through_the_same_layer():
    env = {
        "MINI_AGENT_STORE_TRACES": "1",
        "MINI_AGENT_STORE_PATH": "/tmp/runs.jsonl",
        "CODEX_AGENT_API_BASE": "http://127.0.0.1:9999",
        "CODEX_AGENT_API_KEY": "sk-codex",
        "LITELLM_ENABLE_CODEX_AGENT": "1",
    }
    settings = parse_config({}, env=env)
    assert settings.traces.enabled and settings.traces.path == "/tmp/runs.jsonl"
    codex = settings.providers.codex_agent
    assert codex.enabled and codex.api_base == "http://127.0.0.1:9999" and codex.api_key == "sk-codex"


def test_config_values_win_over_codex_env_but_traces_flag_is_either():
    raw = {"traces": {"enabled": False}, "providers": {"codex_agent": {"api_base": "http://cfg"}}}
    settings = parse_config(raw, env={"MINI_AGENT_STORE_TRACES": "true", "CODEX_AGENT_API_BASE": "http://env"})
    assert settings.traces.enabled is True
    assert settings.providers.codex_agent.api_base == "http://cfg"
    assert settings.providers.codex_agent.enabled is False
    assert parse_config({"traces": {"enabled": True}}, env={"MINI_AGENT_STORE_TRACES": "0"}).traces.enabled


def test_os_environ_references_are_resolved_and_missing_ones_named():
    settings = parse_config({"tools": {"http": {"headers": {"X-Key": "os.environ/TOOL_KEY"}}}}, env={"TOOL_KEY": "abc"})
    assert settings.tools.http.headers == {"X-Key": "abc"}
    with pytest.raises(ConfigError, match=r"proxy_ext.tools.http.headers.X-Key: environment variable TOOL_KEY"):
        parse_config({"tools": {"http": {"headers": {"X-Key": "os.environ/TOOL_KEY"}}}}, env={})


def test_importing_the_package_is_light_and_offline():
    """`import proxy_ext` (client helpers) must not pull in LiteLLM nor do I/O."""
    import subprocess
    import sys

    code = "import sys, socket\nsocket.socket.connect = None\nimport proxy_ext, proxy_ext.config\nprint('litellm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_missing_prometheus_client_turns_metrics_off_instead_of_failing():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from proxy_ext import metrics\n"
        "c = metrics.counter('x', 'doc', ('a',)); c.labels(a='1').inc(); metrics.histogram('h', 'doc').observe(1.0)\n"
        "print(metrics.AVAILABLE, metrics.render())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False b''"


def test_a_profile_naming_a_model_routed_to_an_agent_profile_is_rejected(tmp_path):
    import yaml

    from proxy_ext.config import load_config_file

    document = {"model_list": [{"model_name": "agent-loop", "litellm_params": {"model": "mini-agent/loop"}}],
                "proxy_ext": {"agent": {"profiles": {"loop": {"escalation": ["fake/x", "agent-loop"]}}}}}
    path = tmp_path / "proxy_config.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as info:
        load_config_file(path, env={})
    assert "agent.profiles.loop names the model 'agent-loop'" in str(info.value) and "recurse" in str(info.value)
    document["proxy_ext"]["agent"]["profiles"]["loop"]["escalation"] = ["fake/x"]
    path.write_text(yaml.safe_dump(document))
    assert load_config_file(path, env={})[1].agent.profiles["loop"].escalation == ["fake/x"]
