"""codex-agent through the real proxy: HTTP mode against the fake upstream (a real OpenAI-compatible
server standing in for the codex-agent service), CLI mode with a fake ``codex`` executable replaying
recorded JSONL, and the enablement gate with and without the extension's callbacks line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.codex_fake import install_fake_codex
from tests.conftest import base_config
from tests.harness import ProxyProcess, Reply

FAKE_CODEX = str(Path(__file__).parent / "codex_fake" / "codex")
CODEX_PROVIDERS = [
    {"provider": "codex-agent", "custom_handler": "proxy_ext.providers.codex_agent.handler"},
    {"provider": "codex_cli_agent", "custom_handler": "proxy_ext.providers.codex_agent.handler"},
]
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
ERROR_STATUSES = [401, 403, 404, 429, 500, 503]
USER = [{"role": "user", "content": "fix the bug"}]


def with_codex(config: dict, *, callbacks: bool = True) -> dict:
    config["litellm_settings"]["custom_provider_map"] += CODEX_PROVIDERS
    if not callbacks:
        config["litellm_settings"].pop("callbacks", None)
    return config


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid_file: Path, timeout_s: float = 10.0) -> list[int]:
    pids = [int(p) for p in pid_file.read_text().split()]
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture(scope="module")
def codex_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fake-codex")


@pytest.fixture(scope="module")
def codex_proxy(upstream, codex_dir):
    cli_model = lambda name, scenario, **overrides: {  # noqa: E731
        "model_name": name, "litellm_params": {"model": f"codex-agent/{scenario}", **PRICES, "codex_agent": {"mode": "cli", **overrides}}}
    models = [
        {"model_name": "agent-http", "litellm_params": {"model": "codex-agent/agent-http", "api_base": upstream.base_url, "api_key": "sk-agent-key", **PRICES}},
        {"model_name": "agent-http-nokey", "litellm_params": {"model": "codex-agent/agent-http-nokey", "api_base": upstream.base_url}},
        *({"model_name": f"agent-http-{s}", "litellm_params": {"model": f"codex-agent/agent-{s}", "api_base": upstream.base_url}} for s in ERROR_STATUSES),
        {"model_name": "agent-http-fallback", "litellm_params": {"model": "codex-agent/agent-fallback", "api_base": upstream.base_url}},
        cli_model("agent-cli", "ok"),
        cli_model("agent-cli-failed", "failed"),
        cli_model("agent-cli-hang", "hang", cli={"timeout_s": 2, "kill_grace_s": 0.5}),
        cli_model("agent-cli-slow", "slow-stream"),
        cli_model("agent-cli-huge", "huge"),
        cli_model("agent-cli-flood", "flood", cli={"max_output_bytes": 65536}),
        cli_model("agent-cli-env", "env", cli={"config_overrides": ['model_provider="px"'], "sandbox": "workspace-write"}),
        {"model_name": "agent-mode-cli", "litellm_params": {"model": "codex-agent/ok", "codex_agent": {"mode": "cli"}}},
    ]
    # No callbacks line and no `enabled` in the file: the provider loads the config file itself, and
    # the seed's environment variables switch it on and give the base URL of `agent-env`.
    section = {"providers": {"codex_agent": {"cli": {
        "binary": str(install_fake_codex(codex_dir)), "timeout_s": 30, "extra_env": {"FAKE_CODEX_DIR": str(codex_dir)}}}}}
    models.append({"model_name": "agent-env", "litellm_params": {"model": "codex-agent/agent-env"}})
    config = with_codex(base_config(upstream, section, models=models), callbacks=False)
    config["litellm_settings"]["fallbacks"] = [{"agent-http-fallback": ["echo"]}]
    config["router_settings"] = {"num_retries": 0, "disable_cooldowns": True}  # each error test calls twice
    env = {"LITELLM_ENABLE_CODEX_AGENT": "1", "CODEX_AGENT_API_BASE": upstream.base_url, "PROXY_SECRET_FOR_TEST": "must-not-leak"}
    with ProxyProcess(config, env=env) as process:
        yield process


# ------------------------------------------------------------------------------------ HTTP mode

def test_http_mode_through_the_proxy(codex_proxy, upstream):
    upstream.script("agent-http", Reply(text="patched the bug", prompt_tokens=12, completion_tokens=5))
    client = codex_proxy.openai()
    raw = client.chat.completions.with_raw_response.create(model="agent-http", messages=USER)
    reply = raw.parse()
    assert reply.choices[0].message.content == "patched the bug"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 5)
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(12 * 0.001 + 5 * 0.002)
    sent = upstream.requests_for("agent-http")[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-agent-key"
    assert sent["body"]["messages"] == USER

    stream = client.chat.completions.create(model="agent-http", messages=USER, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "patched the bug"
    assert any(c.usage and c.usage.total_tokens == 17 for c in chunks)
    assert upstream.requests_for("agent-http")[-1]["body"]["stream"] is True


def test_bearer_header_only_when_a_key_is_set(codex_proxy, upstream):
    codex_proxy.openai().chat.completions.create(model="agent-http-nokey", messages=USER)
    assert "authorization" not in upstream.requests_for("agent-http-nokey")[-1]["headers"]


@pytest.mark.parametrize("status, exception", [
    (401, openai.AuthenticationError), (403, openai.PermissionDeniedError), (404, openai.NotFoundError),
    (429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.InternalServerError),
])
def test_upstream_errors_keep_their_status(codex_proxy, upstream, status, exception):
    upstream.script(f"agent-{status}", Reply(status=status, error_message=f"agent says {status}"))
    client = codex_proxy.openai()
    with pytest.raises(exception) as info:
        client.chat.completions.create(model=f"agent-http-{status}", messages=USER)
    assert info.value.status_code == status
    assert f"agent says {status}" in str(info.value)
    with pytest.raises(exception) as info:
        list(client.chat.completions.create(model=f"agent-http-{status}", messages=USER, stream=True))
    assert info.value.status_code == status


def test_router_fallback_applies_to_codex_agent_errors(codex_proxy, upstream):
    upstream.script("agent-fallback", Reply(status=503, error_message="agent overloaded"))
    reply = codex_proxy.openai().chat.completions.create(model="agent-http-fallback", messages=[{"role": "user", "content": "via echo"}])
    assert reply.choices[0].message.content == "via echo"  # the echo model answered


def test_request_body_cannot_change_provider_settings(codex_proxy, upstream):
    upstream.script("agent-http", Reply(text="still http"))
    reply = codex_proxy.openai().chat.completions.create(
        model="agent-http", messages=USER, extra_body={"codex_agent": {"mode": "cli", "cli": {"binary": "/bin/sh"}}})
    assert reply.choices[0].message.content == "still http"
    assert "codex_agent" not in upstream.requests_for("agent-http")[-1]["body"]


# ------------------------------------------------------------------------------------ CLI mode

def test_cli_mode_answer_usage_cost_and_stream(codex_proxy):
    client = codex_proxy.openai()
    raw = client.chat.completions.with_raw_response.create(model="agent-cli", messages=USER)
    reply = raw.parse()
    assert reply.choices[0].message.content == "ANSWER: fix the bug"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1200, 34)
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(1200 * 0.001 + 34 * 0.002)

    chunks = list(client.chat.completions.create(model="agent-cli", messages=USER, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me look at the files.\n\nANSWER: fix the bug"
    assert any(c.usage and c.usage.completion_tokens == 34 for c in chunks)


def test_codex_agent_alias_with_per_model_cli_mode(codex_proxy):
    reply = codex_proxy.openai().chat.completions.create(model="agent-mode-cli", messages=USER)
    assert reply.choices[0].message.content == "ANSWER: fix the bug"


def test_cli_turn_failed_is_an_error_with_codex_message(codex_proxy):
    with pytest.raises(openai.APIStatusError) as info:
        codex_proxy.openai().chat.completions.create(model="agent-cli-failed", messages=USER)
    assert info.value.status_code == 502
    assert "Incorrect API key provided" in str(info.value)


def test_cli_minimal_environment_arguments_and_workspace(codex_proxy):
    import json

    reply = codex_proxy.openai().chat.completions.create(model="agent-cli-env", messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}])
    seen = json.loads(reply.choices[0].message.content)
    assert "PATH" in seen["env"] and "FAKE_CODEX_DIR" in seen["env"]
    assert set(seen["env"]) <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "FAKE_CODEX_DIR", "LC_CTYPE"}  # CPython may add LC_CTYPE
    argv = seen["argv"]
    assert argv[:3] == ["exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("--sandbox") + 1] == "workspace-write"
    assert argv[argv.index("-m") + 1] == "env" and argv[argv.index("-c") + 1] == 'model_provider="px"' and argv[-1] == "-"
    assert argv[argv.index("--cd") + 1] == seen["cwd"]
    assert not Path(seen["cwd"]).exists()  # the per-call temporary workspace is removed
    assert seen["prompt"].startswith("## System\nbe brief\n\n## User\nhello")


def test_cli_hang_times_out_and_leaves_no_process(codex_proxy, codex_dir):
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        codex_proxy.openai(timeout=30).chat.completions.create(model="agent-cli-hang", messages=USER)
    assert info.value.status_code == 408
    assert time.monotonic() - started < 15
    assert wait_gone(codex_dir / "hang.pids") == []


def test_cli_client_disconnect_kills_the_process_group(codex_proxy, codex_dir):
    (codex_dir / "slow-stream.pids").unlink(missing_ok=True)
    body = {"model": "agent-cli-slow", "messages": USER, "stream": True}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{codex_proxy.base_url}/v1/chat/completions", json=body, headers=codex_proxy.headers) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if "first words" in line:
                    break
    deadline = time.monotonic() + 10
    while len((codex_dir / "slow-stream.pids").read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the fake has started its child
    assert wait_gone(codex_dir / "slow-stream.pids") == []


def test_cli_huge_answer_comes_back_whole(codex_proxy):
    client = codex_proxy.openai(timeout=60)
    expected = ("0123456789abcdef" * 64 + "\n") * 3000
    reply = client.chat.completions.create(model="agent-cli-huge", messages=USER)
    assert reply.choices[0].message.content == expected
    chunks = list(client.chat.completions.create(model="agent-cli-huge", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected


def test_cli_output_over_the_limit_stops_the_run(codex_proxy, codex_dir):
    with pytest.raises(openai.APIStatusError) as info:
        codex_proxy.openai().chat.completions.create(model="agent-cli-flood", messages=USER)
    assert info.value.status_code == 502 and "max_output_bytes" in str(info.value)
    assert wait_gone(codex_dir / "flood.pids") == []


# ------------------------------------------------------------------------------------ the gate

def test_env_enables_provider_without_the_callbacks_line(codex_proxy, upstream):
    upstream.script("agent-env", Reply(text="env ok"))
    reply = codex_proxy.openai().chat.completions.create(model="agent-env", messages=USER)
    assert reply.choices[0].message.content == "env ok"
    assert "authorization" not in upstream.requests_for("agent-env")[-1]["headers"]


@pytest.fixture(scope="module")
def disabled_proxy(upstream):
    models = [{"model_name": "agent", "litellm_params": {"model": "codex-agent/agent-off", "api_base": upstream.base_url}},
              {"model_name": "agent-cli", "litellm_params": {"model": "codex-agent/ok", "codex_agent": {"mode": "cli"}}}]
    config = with_codex(base_config(upstream, {"providers": {"codex_agent": {"cli": {"binary": FAKE_CODEX}}}}, models=models))
    with ProxyProcess(config) as process:
        yield process


@pytest.mark.parametrize("model", ["agent", "agent-cli"])
def test_disabled_provider_refuses_with_403(disabled_proxy, upstream, model):
    with pytest.raises(openai.PermissionDeniedError) as info:
        disabled_proxy.openai().chat.completions.create(model=model, messages=USER)
    assert "LITELLM_ENABLE_CODEX_AGENT=1" in str(info.value) and "enabled: true" in str(info.value)
    assert upstream.requests_for("agent-off") == []
