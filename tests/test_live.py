"""The live tier: the key flows against real providers (``make smoke-live``).

Each flow runs when the variables it needs are set and is skipped, naming them, otherwise; without
``--live`` (``make test``) the whole tier is one skipped line. One proxy serves every flow that
runs, with only the models whose keys are there:

| flow | needs |
| --- | --- |
| chat with ``usage.cost`` (plain and streamed) | ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` |
| ``/agent/run`` with the calculator tool; ``mini-agent/live`` | ``OPENAI_API_KEY`` |
| ``codex-agent`` over HTTP | ``CODEX_AGENT_API_BASE`` (+ ``CODEX_AGENT_API_KEY``) |
| codex CLI, with this proxy as codex's model provider | ``OPENAI_API_KEY`` and a codex binary (``CODEX_BIN``, or ``make node-deps``) |

Model ids: ``LIVE_OPENAI_MODEL`` (gpt-4o-mini), ``LIVE_ANTHROPIC_MODEL`` (claude-3-5-haiku-latest),
``CODEX_AGENT_MODEL`` (codex-agent-1). ``OPENAI_BASE_URL`` / ``ANTHROPIC_API_BASE`` point the
providers elsewhere (a gateway, or the fake upstream in tests/test_live_tier.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness import REPO_ROOT, ProxyProcess

pytestmark = pytest.mark.live

OPENAI_MODEL = os.environ.get("LIVE_OPENAI_MODEL", "gpt-4o-mini")
ANTHROPIC_MODEL = os.environ.get("LIVE_ANTHROPIC_MODEL", "claude-3-5-haiku-latest")
CODEX_MODEL = os.environ.get("CODEX_AGENT_MODEL", "codex-agent-1")
CODEX_BIN = os.environ.get("CODEX_BIN") or str(REPO_ROOT / "tests" / "codex_cli" / "node_modules" / ".bin" / "codex")
PASSED_ON = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE",
             "ANTHROPIC_BASE_URL", "CODEX_AGENT_API_BASE", "CODEX_AGENT_API_KEY")
QUESTION = [{"role": "user", "content": "Reply with the single word: pong"}]


def needs(*names: str) -> pytest.MarkDecorator:
    missing = [name for name in names if not os.environ.get(name)]
    return pytest.mark.skipif(bool(missing), reason=f"set {' and '.join(missing)} to run this live flow")


def _codex_cli_missing() -> list[str]:
    missing = [] if os.environ.get("OPENAI_API_KEY") else ["OPENAI_API_KEY"]
    if not os.access(CODEX_BIN, os.X_OK):
        missing.append("CODEX_BIN (or run `make node-deps`)")
    return missing


def _config(codex_home: Path) -> dict:
    models = [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}]
    proxy_ext: dict = {"agent": {"default_model": "echo"}, "providers": {"codex_agent": {}}}
    if os.environ.get("OPENAI_API_KEY"):
        # Named as the model itself: the codex CLI asks this proxy for it by that name.
        models.append({"model_name": OPENAI_MODEL, "litellm_params": {"model": f"openai/{OPENAI_MODEL}", "api_key": "os.environ/OPENAI_API_KEY"}})
        models.append({"model_name": "mini-agent/live", "litellm_params": {"model": "mini-agent/live"}})
        proxy_ext["agent"]["profiles"] = {"live": {"model": OPENAI_MODEL, "tools": ["calculator"], "max_iterations": 4}}
    if os.environ.get("ANTHROPIC_API_KEY"):
        models.append({"model_name": "anthropic", "litellm_params": {"model": f"anthropic/{ANTHROPIC_MODEL}", "api_key": "os.environ/ANTHROPIC_API_KEY"}})
    if os.environ.get("CODEX_AGENT_API_BASE"):
        models.append({"model_name": "codex-http", "litellm_params": {"model": f"codex-agent/{CODEX_MODEL}"}})
    if not _codex_cli_missing():
        models.append({"model_name": "codex-cli", "litellm_params": {"model": f"codex-agent/{OPENAI_MODEL}", "codex_agent": {"mode": "cli"}}})
        proxy_ext["providers"]["codex_agent"]["cli"] = {"binary": CODEX_BIN, "timeout_s": 180, "extra_env": {
            # codex's model provider is this proxy (see live_proxy); a scoped virtual key in production.
            "THIS_PROXY_KEY": "os.environ/LITELLM_MASTER_KEY", "CODEX_HOME": str(codex_home)}}
    return {
        "model_list": models,
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": proxy_ext,
    }


@pytest.fixture(scope="module")
def live_proxy(tmp_path_factory):
    env = {name: os.environ[name] for name in PASSED_ON if os.environ.get(name)}
    env["LITELLM_ENABLE_CODEX_AGENT"] = "1"
    process = ProxyProcess(_config(tmp_path_factory.mktemp("codex-home")), env=env, startup_timeout_s=180)
    if not _codex_cli_missing():  # codex's model provider is this proxy: its URL needs the port just chosen
        config = yaml.safe_load(process.config_path.read_text())
        config["proxy_ext"]["providers"]["codex_agent"]["cli"]["config_overrides"] = [
            'model_provider="this_proxy"', 'model_providers.this_proxy.name="this proxy"',
            f'model_providers.this_proxy.base_url="{process.base_url}/v1"',
            'model_providers.this_proxy.env_key="THIS_PROXY_KEY"', 'model_providers.this_proxy.wire_api="responses"',
        ]
        process.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with process:
        yield process


def _assert_chat_cost(proxy: ProxyProcess, model: str) -> None:
    client = proxy.openai(timeout=120)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION)
    reply = raw.parse()
    assert reply.choices[0].message.content.strip()
    assert reply.usage.cost > 0 and reply.usage.cost == float(raw.headers["x-litellm-response-cost"])
    chunks = list(client.chat.completions.create(model=model, messages=QUESTION, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert [c.usage.cost for c in chunks if c.usage][-1] > 0


@needs("OPENAI_API_KEY")
def test_openai_chat_carries_usage_cost(live_proxy):
    _assert_chat_cost(live_proxy, OPENAI_MODEL)


@needs("ANTHROPIC_API_KEY")
def test_anthropic_chat_carries_usage_cost(live_proxy):
    _assert_chat_cost(live_proxy, "anthropic")


@needs("OPENAI_API_KEY")
def test_agent_run_answers_with_a_tool(live_proxy):
    body = {"model": OPENAI_MODEL, "tools": ["calculator"], "max_iterations": 4,
            "input": "Use the calculator tool to compute 1234 * 5678, then reply with the number only."}
    response = httpx.post(f"{live_proxy.base_url}/agent/run", headers=live_proxy.headers, json=body, timeout=180)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["ok"] is True and run["stopped_reason"] == "final_answer", run
    assert run["metrics"]["tool_calls"] >= 1 and "7006652" in run["final_answer"].replace(",", ""), run
    assert run["metrics"]["cost_usd"] > 0


@needs("OPENAI_API_KEY")
def test_mini_agent_profile_answers_as_a_model(live_proxy):
    reply = live_proxy.openai(timeout=180).chat.completions.create(
        model="mini-agent/live", messages=[{"role": "user", "content": "Use the calculator tool: what is 17 * 23? Reply with the number."}])
    assert "391" in reply.choices[0].message.content
    assert reply.choices[0].message.provider_specific_fields["mini_agent"]["stopped_reason"] == "final_answer"


@needs("CODEX_AGENT_API_BASE")
def test_codex_agent_over_http(live_proxy):
    client = live_proxy.openai(timeout=180)
    assert client.chat.completions.create(model="codex-http", messages=QUESTION).choices[0].message.content.strip()
    stream = client.chat.completions.create(model="codex-http", messages=QUESTION, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()


@pytest.mark.skipif(bool(_codex_cli_missing()), reason=f"set {' and '.join(_codex_cli_missing())} to run this live flow")
def test_codex_cli_answers_through_this_proxy(live_proxy):
    reply = live_proxy.openai(timeout=240).chat.completions.create(model="codex-cli", messages=QUESTION)
    assert "pong" in reply.choices[0].message.content.lower()
