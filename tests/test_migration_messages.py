"""What an operator migrating from the fork, or making a typical mistake, is told (unit tier: the
doctor and the config layer, no proxy): the fork's variables set next to the keys that replace them
(which wins, said out loud), switch values that mean nothing, fork module names left in
``custom_provider_map`` / ``callbacks``, codex models that cannot answer, unknown keys (with the key
probably meant), wrong value types and broken YAML (with the file's line and column)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from proxy_ext.cli import diagnose
from proxy_ext.config import ConfigError, environment_warnings, load_config_file, parse_config

CODEX_MODELS = [{"model_name": "codex-agent", "litellm_params": {"model": "codex-agent/codex-agent-1"}}]


def fork_document(**proxy_ext) -> dict:
    return {
        "model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}, *CODEX_MODELS],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        **({"proxy_ext": proxy_ext} if proxy_ext else {}),
    }


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "proxy_config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def fork_env(monkeypatch):
    for name in ("LITELLM_ENABLE_CODEX_AGENT", "CODEX_AGENT_API_BASE", "CODEX_AGENT_API_KEY", "MINI_AGENT_STORE_TRACES", "MINI_AGENT_STORE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-migration-test-key-0123456789")
    return monkeypatch


# ------------------------------------------------------------------ the fork's variables and the keys

def test_variables_alone_give_no_warning_and_map_to_their_keys():
    env = {"LITELLM_ENABLE_CODEX_AGENT": "1", "CODEX_AGENT_API_BASE": "http://svc/v1", "CODEX_AGENT_API_KEY": "sk-a",
           "MINI_AGENT_STORE_TRACES": "1", "MINI_AGENT_STORE_PATH": "/tmp/t.jsonl"}
    assert environment_warnings(fork_document(), env) == []
    settings = parse_config(None, env)
    codex = settings.providers.codex_agent
    assert (codex.enabled, codex.api_base, codex.api_key) == (True, "http://svc/v1", "sk-a")
    assert (settings.traces.enabled, settings.traces.path) == (True, "/tmp/t.jsonl")


def test_the_same_value_in_both_places_is_not_a_warning():
    document = fork_document(traces={"path": "/tmp/t.jsonl"}, providers={"codex_agent": {"api_base": "http://svc/v1", "enabled": True}})
    env = {"MINI_AGENT_STORE_PATH": "/tmp/t.jsonl", "CODEX_AGENT_API_BASE": "http://svc/v1", "LITELLM_ENABLE_CODEX_AGENT": "1"}
    assert environment_warnings(document, env) == []


def test_both_set_to_different_values_says_which_one_is_used():
    document = fork_document(traces={"path": "/cfg/t.jsonl"},
                             providers={"codex_agent": {"api_base": "http://cfg/v1", "api_key": "sk-config-secret"}})
    env = {"MINI_AGENT_STORE_PATH": "/env/t.jsonl", "CODEX_AGENT_API_BASE": "http://env/v1", "CODEX_AGENT_API_KEY": "sk-env-secret"}
    notes = environment_warnings(document, env)
    assert len(notes) == 3
    path, base, key = notes
    assert "MINI_AGENT_STORE_PATH and proxy_ext.traces.path are both set" in path and "MINI_AGENT_STORE_PATH is used" in path
    assert "proxy_ext.providers.codex_agent.api_base is used" in base and "'http://env/v1'" in base
    assert "proxy_ext.providers.codex_agent.api_key is used" in key
    assert "secret" not in key  # keys are never repeated
    settings = parse_config(document["proxy_ext"], env)  # and what the notes say is what happens
    assert settings.traces.path == "/env/t.jsonl" and settings.providers.codex_agent.api_base == "http://cfg/v1"
    assert settings.providers.codex_agent.api_key == "sk-config-secret"


def test_an_os_environ_reference_is_compared_by_its_value():
    document = fork_document(providers={"codex_agent": {"api_base": "os.environ/SVC_BASE"}})
    assert environment_warnings(document, {"SVC_BASE": "http://svc/v1", "CODEX_AGENT_API_BASE": "http://svc/v1"}) == []
    assert len(environment_warnings(document, {"SVC_BASE": "http://a/v1", "CODEX_AGENT_API_BASE": "http://b/v1"})) == 1


@pytest.mark.parametrize("value", ["2", "enabled", "ture", "y"])
def test_a_switch_value_that_means_nothing_is_read_as_off_and_said_so(value):
    notes = environment_warnings(fork_document(), {"LITELLM_ENABLE_CODEX_AGENT": value})
    assert notes == [f"LITELLM_ENABLE_CODEX_AGENT={value!r} is not a value it understands (on: 1, true, yes, on; off: 0, false, "
                     "no, off): it is read as off"]
    assert parse_config(None, {"LITELLM_ENABLE_CODEX_AGENT": value}).providers.codex_agent.enabled is False


def test_a_switch_against_an_explicit_config_value():
    on_vs_false = environment_warnings(fork_document(traces={"enabled": False}), {"MINI_AGENT_STORE_TRACES": "1"})
    assert len(on_vs_false) == 1 and "traces are on" in on_vs_false[0]
    assert parse_config({"traces": {"enabled": False}}, {"MINI_AGENT_STORE_TRACES": "1"}).traces.enabled is True
    off_vs_true = environment_warnings(fork_document(providers={"codex_agent": {"enabled": True}}), {"LITELLM_ENABLE_CODEX_AGENT": "0"})
    assert len(off_vs_true) == 1 and "does not turn off proxy_ext.providers.codex_agent.enabled: true" in off_vs_true[0]
    assert environment_warnings(fork_document(), {"LITELLM_ENABLE_CODEX_AGENT": "0"}) == []


def test_doctor_reports_the_environment_notes(tmp_path, fork_env):
    fork_env.setenv("MINI_AGENT_STORE_PATH", str(tmp_path / "env.jsonl"))
    fork_env.setenv("LITELLM_ENABLE_CODEX_AGENT", "yes please")
    report = diagnose(write(tmp_path, fork_document(traces={"path": str(tmp_path / "cfg.jsonl")})))
    assert report.ok
    assert any("MINI_AGENT_STORE_PATH is used" in w for w in report.warnings)
    assert any("LITELLM_ENABLE_CODEX_AGENT='yes please' is not a value it understands" in w for w in report.warnings)


# ------------------------------------------------------------------ codex models that cannot answer

def test_codex_models_with_a_base_url_but_the_provider_off(tmp_path, fork_env):
    fork_env.setenv("CODEX_AGENT_API_BASE", "http://svc/v1")
    report = diagnose(write(tmp_path, fork_document()))
    assert any("codex-agent use the codex-agent provider, which is off" in w and "LITELLM_ENABLE_CODEX_AGENT=1" in w for w in report.warnings)


def test_codex_models_on_without_a_base_url(tmp_path, fork_env):
    fork_env.setenv("LITELLM_ENABLE_CODEX_AGENT", "1")
    report = diagnose(write(tmp_path, fork_document()))
    assert any("codex-agent run the codex-agent provider over HTTP without a base URL" in w and "CODEX_AGENT_API_BASE" in w
               for w in report.warnings)
    fork_env.setenv("CODEX_AGENT_API_BASE", "http://svc/v1")
    assert not any("codex-agent provider" in w for w in diagnose(write(tmp_path, fork_document())).warnings)


def test_the_default_config_names_the_codex_models_that_answer_403(tmp_path, fork_env):
    report = diagnose(write(tmp_path, fork_document()))
    assert report.warnings == []  # an unused provider is not a warning...
    assert report.capabilities["codex-agent provider"] == (  # ...but the capability line says what it takes
        "off (mode=http; calls to codex-agent answer 403 until LITELLM_ENABLE_CODEX_AGENT=1 or providers.codex_agent.enabled: true)")


# ------------------------------------------------------------------ fork module names left in the config

def test_a_fork_handler_in_custom_provider_map_says_what_to_do(tmp_path, fork_env):
    document = fork_document()
    document["litellm_settings"]["custom_provider_map"] = [
        {"provider": "codex-agent", "custom_handler": "litellm.llms.codex_agent.handler.codex_agent_llm"},
        {"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"},
    ]
    document["litellm_settings"]["callbacks"].append("fork_hooks.mini_agent_logger")
    report = diagnose(write(tmp_path, document))
    assert len(report.problems) == 2, report.problems
    handler, callback = report.problems
    assert handler.startswith("litellm_settings.custom_provider_map: the entry for 'codex-agent' names "
                              "litellm.llms.codex_agent.handler.codex_agent_llm, which cannot be loaded (ModuleNotFoundError")
    assert "remove the entry" in handler and "proxy_ext.providers.codex_agent.handler" in handler
    assert callback.startswith("litellm_settings.callbacks: fork_hooks.mini_agent_logger cannot be loaded")
    assert "docs/migrating-from-the-fork.md" in callback


def test_a_module_file_next_to_the_config_counts_as_loadable(tmp_path, fork_env):
    (tmp_path / "fork_hooks").mkdir()
    (tmp_path / "fork_hooks" / "logger.py").write_text("instance = object()\n")
    document = fork_document()
    document["litellm_settings"]["callbacks"].append("fork_hooks.logger.instance")
    assert diagnose(write(tmp_path, document)).ok


# ------------------------------------------------------------------ typos, types, YAML

def test_an_unknown_key_names_the_key_probably_meant():
    with pytest.raises(ConfigError) as caught:
        parse_config({"agent": {"defualt_model": "echo", "profiles": {"demo": {"modle": "echo"}}}, "trace": {}, "xyzzy": 1}, env={})
    text = str(caught.value)
    assert "proxy_ext.agent.defualt_model = 'echo': Extra inputs are not permitted; this key is not part of the schema " \
           "(did you mean 'default_model'?)" in text
    assert "proxy_ext.agent.profiles.demo.modle = 'echo'" in text and "(did you mean 'model'?)" in text
    assert "proxy_ext.trace = <section>" in text and "(did you mean 'traces'?)" in text
    assert "proxy_ext.xyzzy = 1: Extra inputs are not permitted; this key is not part of the schema; see docs/config.md" in text


def test_a_wrong_type_says_what_is_allowed_once():
    with pytest.raises(ConfigError) as caught:
        parse_config({"agent": {"max_iterations": "lots"}, "cost": {"enabled": "maybe"}}, env={})
    text = str(caught.value)
    assert "proxy_ext.agent.max_iterations = 'lots': Input should be a valid integer, unable to parse string as an integer; " \
           "allowed: a whole number" in text
    assert text.count("unable to parse string as an integer") == 1
    assert "proxy_ext.cost.enabled = 'maybe'" in text and "allowed: true or false" in text


@pytest.mark.parametrize(("text", "expected"), [
    ("model_list:\n  - model_name: echo\n    litellm_params: {model: echo/echo-1\nlitellm_settings: {}\n",
     "is not valid YAML: line 4, column 17: expected ',' or '}', but got ':' (while parsing a flow mapping at line 3, column 21)"),
    ("model_list: []\n\tlitellm_settings: {}\n",
     "is not valid YAML: line 2, column 1: found character '\\t' that cannot start any token; YAML indents with spaces, never tabs"),
])
def test_broken_yaml_names_the_line_and_column(tmp_path, text, expected):
    path = tmp_path / "proxy_config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert expected in str(caught.value) and "<unicode string>" not in str(caught.value)


# ------------------------------------------------------------------ provider keys and model names

def keyed_document(**proxy_ext) -> dict:
    return {
        "model_list": [
            {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o-mini"}},
            {"model_name": "gpt-ref", "litellm_params": {"model": "openai/gpt-4o", "api_key": "os.environ/MY_OPENAI_KEY"}},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest"}},
            {"model_name": "typo", "litellm_params": {"model": "opneai/gpt-4o-mini"}},
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
        ],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": proxy_ext,
    }


def test_missing_provider_keys_are_listed_and_a_warning_for_the_agent_s_models(tmp_path, fork_env):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MY_OPENAI_KEY"):
        fork_env.delenv(name, raising=False)
    report = diagnose(write(tmp_path, keyed_document(agent={"default_model": "gpt-ref", "escalation": ["gpt-ref", "echo"]})))
    assert report.capabilities["provider keys"] == ("keys missing for gpt (OPENAI_API_KEY); gpt-ref (MY_OPENAI_KEY); "
                                                     "claude (ANTHROPIC_API_KEY): those models fail until their key is set")
    keyed = [w for w in report.warnings if "needs" in w]
    assert keyed == ["model_list: gpt-ref needs MY_OPENAI_KEY, which is not set in this environment: its calls fail "
                     "(authentication error), and the agent uses it (set it in the environment or in .env, or name another model)"]
    fork_env.setenv("OPENAI_API_KEY", "sk-x")
    fork_env.setenv("ANTHROPIC_API_KEY", "sk-y")
    fork_env.setenv("MY_OPENAI_KEY", "sk-z")
    report = diagnose(write(tmp_path, keyed_document(agent={"default_model": "gpt-ref"})))
    assert "provider keys" not in report.capabilities and not any("needs" in w for w in report.warnings)


def test_misspelt_provider_and_model_names_get_the_name_meant(tmp_path, fork_env, capsys):
    report = diagnose(write(tmp_path, keyed_document(agent={"default_model": "gtp", "profiles": {"p": {"model": "eho"}}})))
    assert any("names the provider 'opneai', which is not registered" in w and "did you mean 'openai'?" in w for w in report.warnings)
    assert "agent.default_model = 'gtp' is not a model_name in model_list (did you mean 'gpt'?)" in report.problems
    assert "agent.profiles.p names 'eho', which is not in model_list (did you mean 'echo'?)" in report.problems
    assert "Provider List" not in capsys.readouterr().out  # LiteLLM's own print is kept out of the report


@pytest.mark.parametrize(("written", "meant"), [("codex_agent", "codex-agent"), ("mini_agent", "mini-agent"),
                                                ("codex-cli-agent", "codex_cli_agent")])
def test_a_misspelt_extension_provider_gets_the_name_meant(tmp_path, fork_env, written, meant):
    # codex_cli_agent is written with underscores, codex-agent and mini-agent with hyphens: an easy slip
    document = fork_document(agent={"default_model": "echo", "profiles": {"demo": {"model": "echo"}}})
    document["model_list"].append({"model_name": "slip", "litellm_params": {"model": f"{written}/demo"}})
    warnings = [w for w in diagnose(write(tmp_path, document)).warnings if "model_list: slip" in w]
    assert len(warnings) == 1 and f"names the provider {written!r}, which is not registered" in warnings[0]
    assert f"did you mean {meant!r}?" in warnings[0]
