"""codex-agent provider without a proxy: HTTP mode against respx, the CLI event mapping, settings.

Calls go through ``litellm.completion`` / ``acompletion`` with the handler registered in
``litellm.custom_provider_map``, exactly as the proxy's Router calls it; only the codex-agent
service (our httpx traffic) is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import litellm
import pytest
import respx
from litellm.utils import custom_llm_setup

from proxy_ext.config import parse_config
from proxy_ext.providers.codex_agent import handler
from proxy_ext.providers.codex_agent.cli import build_command, child_env, resolve_binary
from proxy_ext.providers.codex_agent.events import CodexRun, render_prompt
from proxy_ext.state import Runtime, installed_runtime, set_runtime

BASE = "http://codex-agent.test/v1"
FAKE_CODEX = Path(__file__).parent / "codex_fake" / "codex"
MESSAGES = [{"role": "user", "content": "fix the bug"}]


@pytest.fixture(autouse=True)
def registered():
    saved = list(litellm.custom_provider_map)
    litellm.custom_provider_map = [
        {"provider": "codex-agent", "custom_handler": handler},
        {"provider": "codex_cli_agent", "custom_handler": handler},
    ]
    custom_llm_setup()
    previous = installed_runtime()
    yield
    litellm.custom_provider_map = saved
    if previous is not None:
        set_runtime(previous)


def use(section: dict, env: dict | None = None) -> None:
    set_runtime(Runtime(settings=parse_config({"providers": {"codex_agent": section}}, env=env or {})))


def completion_body(text="done", prompt=5, completion=3):
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "agent",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def sse(*texts: str, usage=(4, 2)) -> bytes:
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": t}}]} for t in texts]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}})
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


# ------------------------------------------------------------------------------------ HTTP mode

@respx.mock
def test_http_completion_sends_bearer_and_returns_usage():
    use({"enabled": True, "api_base": BASE, "api_key": "sk-agent"})
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=completion_body("patched", 9, 4)))
    reply = litellm.completion(model="codex-agent/agent-1", messages=MESSAGES, temperature=0.1, metadata={"x": 1})
    assert reply.choices[0].message.content == "patched"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 4)
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer sk-agent"
    body = json.loads(sent.content)
    assert body == {"model": "agent-1", "messages": MESSAGES, "temperature": 0.1}  # nothing else leaks


@respx.mock
def test_http_without_key_sends_no_authorization_header():
    use({"enabled": True, "api_base": BASE})
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=completion_body()))
    litellm.completion(model="codex-agent/agent-1", messages=MESSAGES)
    assert "authorization" not in route.calls.last.request.headers


@respx.mock
def test_http_env_base_and_key_and_per_call_api_base_wins():
    use({"enabled": True}, env={"CODEX_AGENT_API_BASE": BASE, "CODEX_AGENT_API_KEY": "sk-env"})
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=completion_body()))
    litellm.completion(model="codex-agent/a", messages=MESSAGES)
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-env"
    other = respx.post("http://other.test/v1/chat/completions").mock(return_value=httpx.Response(200, json=completion_body("other")))
    reply = litellm.completion(model="codex-agent/a", messages=MESSAGES, api_base="http://other.test/v1", api_key="sk-model")
    assert reply.choices[0].message.content == "other"
    assert other.calls.last.request.headers["authorization"] == "Bearer sk-model"


@respx.mock
async def test_http_async_and_streams():
    use({"enabled": True, "api_base": BASE})
    respx.post(f"{BASE}/chat/completions").mock(
        side_effect=lambda request: httpx.Response(200, content=sse("a", "b", "c"), headers={"content-type": "text/event-stream"})
        if json.loads(request.content).get("stream") else httpx.Response(200, json=completion_body("async"))
    )
    reply = await litellm.acompletion(model="codex-agent/a", messages=MESSAGES)
    assert reply.choices[0].message.content == "async"
    stream = await litellm.acompletion(model="codex-agent/a", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "abc"
    assert any(getattr(c, "usage", None) and c.usage.completion_tokens == 2 for c in chunks)
    sync_chunks = list(litellm.completion(model="codex-agent/a", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in sync_chunks if c.choices) == "abc"


@pytest.mark.parametrize(
    "status, exception",
    [
        (400, litellm.BadRequestError),
        (401, litellm.AuthenticationError),
        (403, litellm.PermissionDeniedError),
        (404, litellm.NotFoundError),
        (429, litellm.RateLimitError),
        (500, litellm.InternalServerError),
        (502, litellm.BadGatewayError),
        (503, litellm.ServiceUnavailableError),
    ],
)
@respx.mock
def test_http_upstream_status_maps_to_litellm_exception(status, exception):
    use({"enabled": True, "api_base": BASE})
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(status, json={"error": {"message": f"boom {status}"}}))
    with pytest.raises(exception) as info:
        litellm.completion(model="codex-agent/a", messages=MESSAGES)
    assert info.value.status_code == status
    assert f"boom {status}" in str(info.value)


@respx.mock
async def test_http_stream_error_status_is_raised_before_any_chunk():
    use({"enabled": True, "api_base": BASE})
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(401, json={"error": {"message": "bad key"}}))
    with pytest.raises(litellm.AuthenticationError, match="bad key"):
        stream = await litellm.acompletion(model="codex-agent/a", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass


@respx.mock
def test_http_transport_errors():
    use({"enabled": True, "api_base": BASE, "timeout_s": 0.5})
    respx.post(f"{BASE}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(litellm.APIConnectionError, match="cannot reach the codex-agent service"):
        litellm.completion(model="codex-agent/a", messages=MESSAGES)
    respx.post(f"{BASE}/chat/completions").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(litellm.Timeout):
        litellm.completion(model="codex-agent/a", messages=MESSAGES)


def test_http_mode_without_base_url_is_a_clear_400(monkeypatch):
    use({"enabled": True})
    with pytest.raises(litellm.BadRequestError, match="CODEX_AGENT_API_BASE"):
        litellm.completion(model="codex-agent/a", messages=MESSAGES)


# ------------------------------------------------------------------------------------ gate, settings

def test_disabled_provider_refuses_with_403_naming_both_switches():
    use({"enabled": False, "api_base": BASE})
    with pytest.raises(litellm.PermissionDeniedError) as info:
        litellm.completion(model="codex-agent/a", messages=MESSAGES)
    assert info.value.status_code == 403
    assert "enabled: true" in str(info.value) and "LITELLM_ENABLE_CODEX_AGENT=1" in str(info.value)


def test_env_flag_enables_the_provider():
    use({}, env={"LITELLM_ENABLE_CODEX_AGENT": "1"})
    with pytest.raises(litellm.BadRequestError, match="needs a base URL"):  # past the gate
        litellm.completion(model="codex-agent/a", messages=MESSAGES)


def test_per_model_overrides_are_validated_with_the_section_schema():
    use({"enabled": True, "api_base": BASE})
    with pytest.raises(litellm.BadRequestError, match=r"litellm_params\.codex_agent\.cli\.sandbox"):
        litellm.completion(model="codex-agent/a", messages=MESSAGES, codex_agent={"cli": {"sandbox": "yolo"}})
    with pytest.raises(litellm.BadRequestError, match="enabled is not allowed"):
        litellm.completion(model="codex-agent/a", messages=MESSAGES, codex_agent={"enabled": True})


@respx.mock
def test_codex_cli_agent_alias_is_the_http_provider():
    # Fork parity: the alias names the same HTTP provider; it never implies the codex CLI, even
    # with CLI settings in the section.
    use({"enabled": True, "api_base": BASE, "cli": {"binary": str(FAKE_CODEX)}})
    route = respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=completion_body("over http")))
    assert litellm.completion(model="codex_cli_agent/agent-1", messages=MESSAGES).choices[0].message.content == "over http"
    assert json.loads(route.calls.last.request.content)["model"] == "agent-1"


def test_codex_cli_agent_without_base_url_says_how_to_choose_the_cli():
    use({"enabled": True})
    with pytest.raises(litellm.BadRequestError, match=r"codex_agent\.mode: cli"):
        litellm.completion(model="codex_cli_agent/a", messages=MESSAGES)


def test_per_model_mode_override_runs_the_cli():
    use({"enabled": True, "api_base": BASE, "cli": {"binary": str(FAKE_CODEX)}})
    reply = litellm.completion(model="codex-agent/ok", messages=MESSAGES, codex_agent={"mode": "cli"})
    assert reply.choices[0].message.content == "ANSWER: fix the bug"


# ------------------------------------------------------------------------------------ in the proxy

DEPLOYMENTS = {
    "cli-1": {"model": "codex-agent/gpt-5", "codex_agent": {"mode": "cli", "cli": {"sandbox": "workspace-write"}}},
    "http-1": {"model": "codex_cli_agent/agent-1", "api_base": BASE, "api_key": "sk-operator"},
    "cred-1": {"model": "codex-agent/agent-1", "litellm_credential_name": "codex-cred"},
    "wild-1": {"model": "codex-agent/*"},
    "echo-1": {"model": "echo/echo-1"},
}


@pytest.fixture
def in_proxy(monkeypatch):
    """The provider as the proxy calls it: the Router's deployments hold the models' settings."""
    from proxy_ext import litellm_adapter

    monkeypatch.setattr(litellm_adapter, "in_proxy", lambda: True)
    monkeypatch.setattr(litellm_adapter, "deployment_litellm_params", lambda model_id: DEPLOYMENTS.get(model_id))
    use({"enabled": True, "api_base": "http://section.test/v1", "api_key": "sk-section"})


def resolve_call(model_info, model="gpt-5", api_base=None, api_key=None, optional_params=None, **litellm_params):
    from proxy_ext.providers.codex_agent.settings import resolve

    params = {"model_info": model_info, **litellm_params} if model_info is not None else litellm_params
    return resolve("codex-agent", model, api_base, api_key, optional_params or {}, params)


def test_in_proxy_client_credentials_do_not_replace_the_deployment(in_proxy):
    # LiteLLM runs a call with client-side credentials on a copy of the deployment with a new id.
    copy = {"id": "per-request-hash", "original_model_id": "cli-1"}
    settings = resolve_call(copy, api_base="http://client.test/v1", api_key="sk-client",
                            optional_params={"codex_agent": {"cli": {"sandbox": "danger-full-access"}}})
    assert (settings.mode, settings.model, settings.config.cli.sandbox) == ("cli", "gpt-5", "workspace-write")
    assert (settings.api_base, settings.api_key) == ("http://section.test/v1", "sk-section")  # the operator's
    http = resolve_call({"id": "other-hash", "original_model_id": "http-1"}, model="codex-agent/agent-1",
                        api_base="http://client.test/v1", api_key="sk-client")
    assert (http.mode, http.model, http.alias, http.api_base, http.api_key) == ("http", "agent-1", "codex_cli_agent", BASE, "sk-operator")


def test_in_proxy_credential_name_and_wildcard_deployments(in_proxy, monkeypatch):
    from litellm.types.utils import CredentialItem

    monkeypatch.setattr(litellm, "credential_list", [
        CredentialItem(credential_name="codex-cred", credential_values={"api_base": "http://cred.test/v1", "api_key": "sk-cred"}, credential_info={})])
    cred = resolve_call({"id": "cred-1"}, model="agent-1", api_key="sk-client")
    assert (cred.api_base, cred.api_key) == ("http://cred.test/v1", "sk-cred")
    assert resolve_call({"id": "wild-1"}, model="codex-agent/picked").model == "picked"


def test_in_proxy_calls_without_a_codex_deployment_are_refused(in_proxy):
    with pytest.raises(litellm.BadRequestError, match="not a codex-agent model"):
        resolve_call({"id": "echo-1"})  # custom_llm_provider: codex-agent in the body of an echo call
    for model_info in (None, {"id": "unknown"}):
        with pytest.raises(litellm.BadRequestError, match="not for a model of the proxy's model_list"):
            resolve_call(model_info, optional_params={"codex_agent": {"mode": "cli"}}, api_base="http://client.test/v1")


def test_in_proxy_health_probes_use_the_entry_they_pass(in_proxy):
    from types import SimpleNamespace

    from proxy_ext.providers.codex_agent.settings import HEALTH_CHECK_ACCOUNT

    probe = {"metadata": {"user_api_key_auth": SimpleNamespace(token=HEALTH_CHECK_ACCOUNT)}}
    settings = resolve_call(None, optional_params={"codex_agent": {"mode": "cli"}}, **probe)
    assert settings.mode == "cli"
    forged = {"metadata": {"user_api_key_auth": {"token": HEALTH_CHECK_ACCOUNT}}}  # what a JSON body could carry
    with pytest.raises(litellm.BadRequestError, match="not for a model"):
        resolve_call(None, **forged)


# ------------------------------------------------------------------------------------ CLI pieces

def test_cli_command_environment_and_binary_resolution(tmp_path, monkeypatch):
    settings = parse_config({"providers": {"codex_agent": {"cli": {
        "config_overrides": ['model_provider="px"'], "extra_env": {"PX_KEY": "k"}, "env_allowlist": ["PATH", "HOME"]}}}})
    cli = settings.providers.codex_agent.cli
    assert build_command("/bin/codex", cli, "/ws", "gpt-x") == [
        "/bin/codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "read-only", "--cd", "/ws", "-m", "gpt-x",
        "-c", 'model_provider="px"', "-",
    ]
    env = child_env(cli, {"PATH": "/usr/bin", "HOME": "/h", "OPENAI_API_KEY": "sk-secret", "LITELLM_MASTER_KEY": "sk-m"})
    assert env == {"PATH": "/usr/bin", "HOME": "/h", "PX_KEY": "k"}
    runtime = Runtime(settings=settings, config_path=tmp_path / "proxy_config.yaml")
    tool = tmp_path / "bin" / "codex"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    assert resolve_binary("bin/codex", runtime) is None  # not executable
    tool.chmod(0o755)
    assert resolve_binary("bin/codex", runtime) == str(tool)  # relative to the config file
    monkeypatch.setenv("PATH", str(tool.parent))
    assert resolve_binary("codex", runtime) == str(tool)
    assert resolve_binary("no-such-codex", runtime) is None


def test_missing_binary_is_a_clear_error():
    use({"enabled": True, "mode": "cli", "cli": {"binary": "/nonexistent/codex"}})
    with pytest.raises(litellm.ServiceUnavailableError, match="cli.binary"):
        litellm.completion(model="codex-agent/ok", messages=MESSAGES)


def test_events_map_to_answer_usage_and_deltas():
    run = CodexRun()
    lines = (Path(__file__).parent / "codex_fake" / "recordings" / "ok.jsonl").read_text().replace("{prompt}", "x").splitlines()
    deltas = [run.feed_line(line) for line in lines]
    assert run.answer == "ANSWER: x"
    assert (run.input_tokens, run.cached_input_tokens, run.output_tokens) == (1200, 200, 34)
    assert "".join(deltas) == "Let me look at the files.\n\nANSWER: x"
    assert run.fatal is None and run.completed
    failed = CodexRun()
    for event in [{"type": "error", "message": "Reconnecting"}, {"type": "turn.failed", "error": {"message": "401 Unauthorized"}}]:
        failed.feed(event)
    assert failed.fatal == "401 Unauthorized"
    recovered = CodexRun()
    for event in [{"type": "error", "message": "Reconnecting"}, {"type": "turn.completed", "usage": {}}]:
        recovered.feed(event)
    assert recovered.fatal is None
    assert CodexRun().feed_line("not json") == ""


def test_prompt_rendering():
    assert render_prompt([{"role": "user", "content": "just this"}]) == "just this"
    prompt = render_prompt([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "now fix it"},
    ])
    assert prompt.startswith("## System\nbe brief\n\n## User\nlook\n[image_url omitted]\n\n## Assistant\nok\n\n## User\nnow fix it")
    assert prompt.endswith("Reply to the last User message above.")


def test_closing_a_sync_cli_stream_early_kills_the_process_group(tmp_path):
    import os
    import time

    from tests.codex_fake import install_fake_codex

    binary = install_fake_codex(tmp_path)
    use({"enabled": True, "mode": "cli", "cli": {"binary": str(binary), "extra_env": {"FAKE_CODEX_DIR": str(tmp_path)}}})
    stream = handler.streaming("slow-stream", MESSAGES, litellm_params={"custom_llm_provider": "codex-agent"}, optional_params={})
    assert next(stream)["text"] == "first words"
    pid_file = tmp_path / "slow-stream.pids"
    deadline = time.monotonic() + 10
    while len(pid_file.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in pid_file.read_text().split()]
    stream.close()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


@respx.mock
def test_http_connections_are_reused_within_a_loop_and_fresh_across_loops():
    import asyncio

    from proxy_ext.providers.codex_agent import http as http_mode

    use({"enabled": True, "api_base": BASE})
    respx.post(f"{BASE}/chat/completions").mock(return_value=httpx.Response(200, json=completion_body("x")))
    seen = []

    async def twice():
        for _ in range(2):
            await litellm.acompletion(model="codex-agent/a", messages=MESSAGES)
        seen.append(set(id(c) for c in http_mode._async_clients[asyncio.get_running_loop()].values()))

    asyncio.run(twice())
    asyncio.run(twice())
    assert [len(s) for s in seen] == [1, 1]  # one pooled client per loop; the second loop did not reuse a dead one
    litellm.completion(model="codex-agent/a", messages=MESSAGES)
    litellm.completion(model="codex-agent/a", messages=MESSAGES)
    assert len(http_mode._sync_clients) == 1


@pytest.mark.parametrize("scenario, exception, text", [
    ("crash", litellm.BadGatewayError, "exited with status 2 without an answer: Error: config profile `missing` not found"),
    ("ratelimited", litellm.RateLimitError, "429 Too Many Requests"),
    ("failed", litellm.BadGatewayError, "Incorrect API key provided"),
])
async def test_cli_failures_carry_codex_message(scenario, exception, text):
    use({"enabled": True, "mode": "cli", "cli": {"binary": str(FAKE_CODEX)}})
    with pytest.raises(exception, match=text):
        await litellm.acompletion(model=f"codex-agent/{scenario}", messages=MESSAGES)


def test_cli_recoverable_error_event_then_answer_succeeds():
    use({"enabled": True, "mode": "cli", "cli": {"binary": str(FAKE_CODEX)}})
    assert litellm.completion(model="codex-agent/recovered", messages=MESSAGES).choices[0].message.content == "recovered answer"
