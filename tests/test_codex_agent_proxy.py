"""codex-agent through the real proxy: HTTP mode against the fake upstream (a real OpenAI-compatible
server standing in for the codex-agent service), CLI mode with a fake ``codex`` executable replaying
recorded JSONL, and the enablement gate with and without the extension's callbacks line."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.codex_fake import install_fake_codex
from tests.conftest import base_config
from tests.harness import FakeUpstream, ProxyProcess, Reply, call

FAKE_CODEX = str(Path(__file__).parent / "codex_fake" / "codex")
CODEX_PROVIDERS = [
    {"provider": "codex-agent", "custom_handler": "proxy_ext.providers.codex_agent.handler"},
    {"provider": "codex_cli_agent", "custom_handler": "proxy_ext.providers.codex_agent.handler"},
]
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
ERROR_STATUSES = [401, 403, 404, 429, 500, 503]
USER = [{"role": "user", "content": "fix the bug"}]
CLIENT_SIDE_OPT_IN = {"configurable_clientside_auth_params": ["api_base", "base_url"]}


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
        cli_model("agent-cli-silent", "hang"),
        cli_model("agent-cli-huge", "huge"),
        cli_model("agent-cli-flood", "flood", cli={"max_output_bytes": 65536}),
        cli_model("agent-cli-env", "env", cli={"config_overrides": ['model_provider="px"'], "sandbox": "workspace-write"}),
        {"model_name": "agent-mode-cli", "litellm_params": {"model": "codex-agent/ok", "codex_agent": {"mode": "cli"}}},
        # LiteLLM lets clients send api_base / base_url for these two (its per-model opt-in): codex ignores them.
        {"model_name": "agent-cli-open", "litellm_params": {
            "model": "codex-agent/env", "codex_agent": {"mode": "cli", "cli": {"sandbox": "workspace-write"}}, **CLIENT_SIDE_OPT_IN}},
        {"model_name": "agent-http-open", "litellm_params": {
            "model": "codex-agent/agent-open", "api_base": upstream.base_url, "api_key": "sk-operator-open", **CLIENT_SIDE_OPT_IN}},
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


WEATHER = {"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("pieces", [None, 3], ids=["whole-calls", "argument-pieces"])
def test_http_mode_streams_the_services_tool_calls(codex_proxy, upstream, pieces):
    # A streamed answer that calls tools reaches the client with its tool calls (before: text and
    # finish_reason "tool_calls" only, so streaming SDK loops saw a tool turn without any call).
    upstream.script("agent-http", Reply(text="Checking.", tool_calls=[call("weather", {"city": "Oslo"}, "cx1"),
                                                                      call("weather", {"city": "Rome"}, "cx2")],
                                        tool_call_chunks=pieces))
    with codex_proxy.openai().chat.completions.stream(model="agent-http", messages=USER, tools=[WEATHER]) as stream:
        for _ in stream:
            pass
        reply = stream.get_final_completion()
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("cx1", "weather", {"city": "Oslo"}), ("cx2", "weather", {"city": "Rome"})]
    assert upstream.requests_for("agent-http")[-1]["body"]["tools"] == [WEATHER]


RESPONSES_WEATHER = {"type": "function", **WEATHER["function"]}


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_http_mode_tool_calls_on_the_responses_api(codex_proxy, upstream, stream):
    # The Responses API with function tools (the Agents SDK's default API, client.responses.*):
    # the service's tool calls come back as function_call items (before: a non-streamed answer was
    # a 400 "'dict' object has no attribute 'id'" from LiteLLM's Responses bridge).
    upstream.script("agent-http", Reply(tool_calls=[call("weather", {"city": "Oslo"}, "rx1"), call("weather", {"city": "Rome"}, "rx2")]))
    client = codex_proxy.openai()
    if stream:
        with client.responses.stream(model="agent-http", input="weather?", tools=[RESPONSES_WEATHER]) as events:
            for _ in events:
                pass
            response = events.get_final_response()
    else:
        response = client.responses.create(model="agent-http", input="weather?", tools=[RESPONSES_WEATHER])
    calls = [(o.type, o.call_id, o.name, json.loads(o.arguments)) for o in response.output]
    assert calls == [("function_call", "rx1", "weather", {"city": "Oslo"}), ("function_call", "rx2", "weather", {"city": "Rome"})]
    assert [t["function"]["name"] for t in upstream.requests_for("agent-http")[-1]["body"]["tools"]] == ["weather"]


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


@pytest.fixture
def other_host():
    """A second OpenAI-compatible server: where a client-supplied api_base would send the call."""
    server = FakeUpstream().start()
    yield server
    server.stop()


def client_credentials(other: FakeUpstream) -> list[dict]:
    return [{"api_key": "sk-client"}, {"api_base": other.base_url}, {"base_url": other.base_url},
            {"api_key": "sk-client", "api_base": other.base_url}, {"custom_llm_provider": "codex_cli_agent"}]


def chat_text(proxy: ProxyProcess, body: dict) -> str:
    """The answer of a raw chat call (streamed or not); the status must be 200."""
    import json

    response = httpx.post(f"{proxy.base_url}/v1/chat/completions", json=body, headers=proxy.headers, timeout=60)
    assert response.status_code == 200, (body, response.text)
    if not body.get("stream"):
        return response.json()["choices"][0]["message"]["content"]
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])


def test_client_credentials_do_not_change_how_a_cli_model_runs(codex_proxy, other_host):
    """F6: a body api_key (or api_base, base_url, custom_llm_provider) made LiteLLM run the call on a
    per-request copy of the deployment; the provider no longer found the model's settings and ran
    the section's defaults (HTTP mode) instead of its CLI with its sandbox."""
    import json

    for extra in client_credentials(other_host):
        for stream in (False, True):
            answer = chat_text(codex_proxy, {"model": "agent-cli-open", "messages": USER, "stream": stream, **extra})
            argv = json.loads(answer)["argv"]  # the fake codex reports how it was run
            assert argv[argv.index("--sandbox") + 1] == "workspace-write", extra
            assert argv[argv.index("-m") + 1] == "env", extra  # the model's name, not "codex-agent/env"
    assert other_host.requests == []


def test_client_api_base_does_not_redirect_an_http_model(codex_proxy, upstream, other_host):
    """The operator's base URL and key win over a client's: no call reaches a host a client names (SSRF)."""
    upstream.script("agent-open", Reply(text="operator's service"))
    for extra in client_credentials(other_host):
        for stream in (False, True):
            before = len(upstream.requests_for("agent-open"))
            answer = chat_text(codex_proxy, {"model": "agent-http-open", "messages": USER, "stream": stream, **extra})
            assert answer == "operator's service", extra
            sent = upstream.requests_for("agent-open")
            assert len(sent) == before + 1, extra
            assert sent[-1]["headers"]["authorization"] == "Bearer sk-operator-open", extra
    assert other_host.requests == []


def test_a_request_cannot_make_another_model_a_codex_model(codex_proxy):
    with pytest.raises(openai.BadRequestError) as info:
        codex_proxy.openai().chat.completions.create(model="echo", messages=USER, extra_body={"custom_llm_provider": "codex-agent"})
    assert "not a codex-agent model" in str(info.value)


def test_n_above_one_is_a_400_before_the_service_is_called(codex_proxy, upstream):
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as info:
        codex_proxy.openai().chat.completions.create(model="agent-http", messages=USER, n=2)
    assert "gives one answer per request: n=2" in str(info.value)
    assert len(upstream.requests) == before


def test_health_probe_of_a_cli_model_runs_its_cli(codex_proxy, upstream, codex_dir):
    """LiteLLM's /health calls the provider without a Router deployment: the model's own settings
    apply (its CLI ran; before, the section's HTTP default answered for it)."""
    (codex_dir / "env.pids").unlink(missing_ok=True)
    before = len(upstream.requests_for("env"))
    response = httpx.get(f"{codex_proxy.base_url}/health", params={"model": "agent-cli-open"}, headers=codex_proxy.headers, timeout=60)
    assert response.status_code == 200 and response.json()["healthy_count"] == 1, response.text
    assert (codex_dir / "env.pids").exists()
    assert len(upstream.requests_for("env")) == before


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


@pytest.mark.parametrize("stream", [True, False])
def test_cli_client_leaving_before_any_answer_kills_codex_at_once_and_no_retry_starts_it(codex_proxy, codex_dir, stream):
    # No callbacks line in this proxy: the provider itself puts the request context around it. The
    # body asks for retries: a run killed by the hang-up must not be retried for a client that left.
    (codex_dir / "hang.pids").unlink(missing_ok=True)
    (codex_dir / "hang.starts").unlink(missing_ok=True)
    body = json.dumps({"model": "agent-cli-silent", "messages": USER, "stream": stream, "num_retries": 2}).encode()
    host, port = codex_proxy.base_url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: {codex_proxy.headers['Authorization']}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 10
        while len((codex_dir / "hang.pids").read_text().split() if (codex_dir / "hang.pids").exists() else []) < 2:
            assert time.monotonic() < deadline, "the fake codex did not start its child"
            time.sleep(0.05)
    assert wait_gone(codex_dir / "hang.pids", timeout_s=5) == []  # not at the model's 30 s timeout
    time.sleep(1)  # room for a retry
    assert len((codex_dir / "hang.starts").read_text().split()) == 1


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
