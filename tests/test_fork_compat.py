"""Fork parity through the real proxy: the one callbacks line registers proxy_ext's providers, the
seed's environment variables alone switch codex-agent on, and both aliases (``codex-agent`` and
``codex_cli_agent``) are the HTTP provider — Bearer only when a key is set.

Two proxies, started together:

- ``fork``: a config as the fork's operators wrote it — model entries, the callbacks line, no
  ``custom_provider_map``, no ``proxy_ext:`` section; ``LITELLM_ENABLE_CODEX_AGENT=1``,
  ``CODEX_AGENT_API_BASE`` and ``CODEX_AGENT_API_KEY`` in the environment.
- ``mapped``: no ``CODEX_AGENT_API_KEY``, and a ``custom_provider_map`` naming only ``echo`` written
  *after* the callbacks line (LiteLLM replaces its provider map there), plus a model written for the
  old meaning of ``codex_cli_agent`` (the start-up message names it).

The ``mapped`` proxy also has the fork's trace variables (``MINI_AGENT_STORE_TRACES=1``,
``MINI_AGENT_STORE_PATH``) next to a different ``traces.path``: the variable wins, and the start-up
log says so. A config still naming the fork's own handler module stops with a message saying what
to change.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.harness import ProxyProcess, Reply

USER = [{"role": "user", "content": "fix the bug"}]
FORK_KEY = "sk-fork-agent-key"
MASTER = {"master_key": "os.environ/LITELLM_MASTER_KEY"}


def codex_model(name: str, model: str, **params) -> dict:
    return {"model_name": name, "litellm_params": {"model": model, **params}}


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fork-traces")


@pytest.fixture(scope="module")
def proxies(upstream, traces_dir):
    fork = {
        "model_list": [
            codex_model("fork-a", "codex-agent/fork-a"),
            codex_model("fork-b", "codex_cli_agent/fork-b"),
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
        ],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": MASTER,
    }
    mapped = {
        "model_list": [
            codex_model("nokey-a", "codex-agent/nokey-a"),
            codex_model("nokey-b", "codex_cli_agent/nokey-b"),
            codex_model("legacy", "codex_cli_agent/legacy", codex_agent={"cli": {"timeout_s": 5}}),
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
            {"model_name": "mini-agent/demo", "litellm_params": {"model": "mini-agent/demo"}},
        ],
        "litellm_settings": {  # order matters here: the map comes after the callbacks line
            "callbacks": ["proxy_ext.extension"],
            "custom_provider_map": [{"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"}],
        },
        "general_settings": MASTER,
        "proxy_ext": {"agent": {"default_model": "echo", "profiles": {"demo": {"model": "echo"}}},
                      "traces": {"path": str(traces_dir / "config.jsonl")}},  # MINI_AGENT_STORE_PATH wins (and says so)
    }
    env = {"LITELLM_ENABLE_CODEX_AGENT": "1", "CODEX_AGENT_API_BASE": upstream.base_url}
    variants = {
        "fork": ProxyProcess(fork, env={**env, "CODEX_AGENT_API_KEY": FORK_KEY}),
        "mapped": ProxyProcess(mapped, env={**env, "MINI_AGENT_STORE_TRACES": "1", "MINI_AGENT_STORE_PATH": str(traces_dir / "env.jsonl")}),
    }
    with ThreadPoolExecutor(len(variants)) as pool:
        list(pool.map(lambda p: p.start(), variants.values()))
    try:
        yield variants
    finally:
        for process in variants.values():
            process.stop()


def _calls(proxy: ProxyProcess, model: str) -> list[str]:
    """The answer of a sync, a sync-streamed, an async and an async-streamed call."""
    client = proxy.openai()
    answers = [client.chat.completions.create(model=model, messages=USER).choices[0].message.content]
    stream = client.chat.completions.create(model=model, messages=USER, stream=True)
    answers.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    async def async_calls() -> list[str]:
        aclient = proxy.async_openai()
        reply = await aclient.chat.completions.create(model=model, messages=USER)
        streamed = await aclient.chat.completions.create(model=model, messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
        return [reply.choices[0].message.content, text]

    return answers + asyncio.run(async_calls())


@pytest.mark.parametrize("alias", ["codex-agent", "codex_cli_agent"])
def test_env_only_enablement_serves_both_aliases_over_http_with_the_bearer_key(proxies, upstream, alias):
    name = {"codex-agent": "fork-a", "codex_cli_agent": "fork-b"}[alias]
    upstream.script(name, Reply(text=f"{alias} over http"))
    assert _calls(proxies["fork"], name) == [f"{alias} over http"] * 4
    sent = upstream.requests_for(name)[-4:]
    assert [r["path"] for r in sent] == ["/v1/chat/completions"] * 4
    assert [r["body"].get("stream", False) for r in sent] == [False, True, False, True]
    assert all(r["headers"].get("authorization") == f"Bearer {FORK_KEY}" for r in sent)
    assert all(r["body"]["messages"] == USER for r in sent)


@pytest.mark.parametrize("name", ["nokey-a", "nokey-b"])
def test_without_a_key_no_authorization_header_is_sent(proxies, upstream, name):
    upstream.script(name, Reply(text="no key needed"))
    assert _calls(proxies["mapped"], name) == ["no key needed"] * 4
    assert all("authorization" not in r["headers"] for r in upstream.requests_for(name)[-4:])


def test_a_custom_provider_map_after_the_callbacks_line_keeps_the_other_providers(proxies):
    client = proxies["mapped"].openai()
    assert client.chat.completions.create(model="echo", messages=USER).choices[0].message.content == "fix the bug"
    reply = client.chat.completions.create(model="mini-agent/demo", messages=[{"role": "user", "content": "hello demo"}])
    assert reply.choices[0].message.content == "hello demo"


def test_the_callbacks_line_alone_registers_echo_for_chat_and_responses(proxies):
    proxy = proxies["fork"]
    client = proxy.openai()
    assert client.chat.completions.create(model="echo", messages=USER).choices[0].message.content == "fix the bug"
    response = client.responses.create(model="echo", input="hello responses")
    assert response.output_text == "hello responses" and response.usage.cost == 0.0
    events = list(client.responses.create(model="echo", input="one two", stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = [e for e in events if e.type == "response.completed"]
    assert deltas == "one two" and len(completed) == 1 and completed[0].response.usage.cost == 0.0


def test_a_config_written_for_the_old_cli_alias_gets_a_start_up_message(proxies, upstream):
    log = proxies["mapped"].log(None)
    assert "codex_cli_agent/* is the codex-agent HTTP provider" in log
    assert "legacy (codex_cli_agent/legacy)" in log and "codex_agent: {mode: cli}" in log
    assert "nokey-b" not in log.split("codex_cli_agent/* is the codex-agent HTTP provider", 1)[1].split("\n\n", 1)[0]
    assert "codex_cli_agent/* is the codex-agent HTTP provider" not in proxies["fork"].log(None)
    upstream.script("legacy", Reply(text="still http"))  # the model runs over HTTP now
    assert proxies["mapped"].openai().chat.completions.create(model="legacy", messages=USER).choices[0].message.content == "still http"


def test_an_unknown_provider_alias_is_still_refused_cleanly(proxies):
    response = httpx.post(f"{proxies['fork'].base_url}/v1/chat/completions", headers=proxies["fork"].headers,
                          json={"model": "no-such-model", "messages": USER}, timeout=30)
    assert 400 <= response.status_code < 500, response.text
    assert json.loads(response.text)["error"]["message"]


def test_the_fork_trace_variables_win_over_the_config_and_the_start_up_log_says_so(proxies, traces_dir):
    proxy = proxies["mapped"]
    response = httpx.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, json={"input": "trace me"}, timeout=60)
    assert response.status_code == 200 and response.json()["final_answer"] == "trace me", response.text
    records = [json.loads(line) for line in (traces_dir / "env.jsonl").read_text().splitlines()]
    assert records and not (traces_dir / "config.jsonl").exists()
    log = proxy.log(None)
    assert "proxy_ext: warning: MINI_AGENT_STORE_PATH and proxy_ext.traces.path are both set, to different values" in log
    assert "MINI_AGENT_STORE_PATH is used, as documented" in log
    assert "MINI_AGENT_STORE_PATH and proxy_ext.traces.path" not in proxies["fork"].log(None)


def test_a_fork_handler_left_in_custom_provider_map_stops_the_proxy_saying_what_to_change():
    config = {
        "model_list": [codex_model("fork-a", "codex-agent/fork-a")],
        "litellm_settings": {
            "callbacks": ["proxy_ext.extension"],
            "custom_provider_map": [{"provider": "codex-agent", "custom_handler": "litellm.llms.codex_agent.handler.codex_agent_llm"}],
        },
        "general_settings": MASTER,
    }
    process = ProxyProcess(config, env={"LITELLM_ENABLE_CODEX_AGENT": "1"})
    process.spawn()
    assert process.wait_exit(timeout_s=90) == 3
    log = process.log(None)
    assert ("proxy_ext: litellm_settings.custom_provider_map: the entry for 'codex-agent' names "
            "litellm.llms.codex_agent.handler.codex_agent_llm, which cannot be loaded") in log
    assert "remove the entry" in log and "proxy_ext: the proxy will not start until this is fixed." in log
