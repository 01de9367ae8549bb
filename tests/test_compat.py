"""The compatibility subset (``make test-compat``): what an operator's own LiteLLM must serve with
proxy_ext installed from its wheel — run in throwaway environments with the oldest, a middle and the
newest supported LiteLLM (``tests/compat_run.py``), and in the project's own environment as part of
``make test``.

One proxy from a config in a directory outside the repository: ``/ready``, ``/agent/run`` with a
tool (plain and streamed), ``mini-agent``, ``codex-agent`` over HTTP, ``usage.cost`` on chat /
responses / embeddings (streams included), the request guard and auth refusals.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.harness import ProxyProcess, Reply, call, fake_model_entry

IN_PRICE, OUT_PRICE = 1e-6, 2e-6
PRICED = {"input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE}


@pytest.fixture(scope="module")
def compat_proxy(upstream, tmp_path_factory):
    outside = tmp_path_factory.mktemp("operator-config")  # not the repository: as an operator's own proxy
    config = {
        "model_list": [
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
            fake_model_entry("compat-chat", upstream.base_url, "compat-chat", **PRICED),
            fake_model_entry("compat-embed", upstream.base_url, "compat-embed", **PRICED),
            fake_model_entry("compat-tools", upstream.base_url, "compat-tools"),
            {"model_name": "agent-demo", "litellm_params": {"model": "mini-agent/demo"}},
            {"model_name": "codex-agent", "litellm_params": {"model": "codex-agent/compat-codex"}},
        ],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"agent": {"default_model": "echo", "profiles": {"demo": {"model": "echo"}}},
                      "guard": {"max_body_bytes": 200_000}},
    }
    path = outside / "proxy_config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {"LITELLM_ENABLE_CODEX_AGENT": "1", "CODEX_AGENT_API_BASE": upstream.base_url}
    with ProxyProcess(path, env=env) as process:
        yield process


def test_proxy_ext_comes_from_where_the_run_says():
    """In a compat environment proxy_ext is the installed wheel, not this checkout."""
    import litellm  # noqa: F401  (the version under test is printed by tests/compat_run.py)
    import proxy_ext

    wanted = os.environ.get("PROXY_EXT_COMPAT_SITE")
    if wanted:
        assert Path(proxy_ext.__file__).resolve().is_relative_to(Path(wanted).resolve()), proxy_ext.__file__


def test_ready_and_the_version_check(compat_proxy):
    """Inside the supported range /ready is ok; outside it the proxy still serves, /ready says
    degraded (not 503) naming the range, and the start-up log carries one warning."""
    from proxy_ext.litellm_adapter import SUPPORTED_LITELLM, version_problem

    response = httpx.get(f"{compat_proxy.base_url}/ready", timeout=30)
    body = response.json()
    warnings = [line for line in compat_proxy.log(None).splitlines() if "outside the range proxy_ext supports" in line]
    if version_problem() is None:
        assert response.status_code == 200 and body["ready"] is True and body["status"] == "ok", body
        assert not warnings
    else:
        assert response.status_code == 200 and body["status"] == "degraded", body
        assert body["checks"]["litellm_version"]["ok"] is False and SUPPORTED_LITELLM in body["checks"]["litellm_version"]["reason"]
        assert len(warnings) == 1, warnings
        echo = compat_proxy.openai().chat.completions.create(model="echo", messages=[{"role": "user", "content": "still here"}])
        assert echo.choices[0].message.content == "still here"


def test_agent_run_with_a_tool_plain_and_streamed(compat_proxy, upstream):
    for stream in (False, True):
        upstream.script("compat-tools", Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "t1")]), Reply(text="it is 42"))
        response = httpx.post(f"{compat_proxy.base_url}/agent/run", headers=compat_proxy.headers, timeout=60,
                              json={"input": "6*7?", "model": "compat-tools", "tools": ["calculator"], "stream": stream})
        assert response.status_code == 200, response.text
        if stream:
            assert "event: tool_result" in response.text and '"final_answer":"it is 42"' in response.text
        else:
            assert response.json()["final_answer"] == "it is 42" and response.json()["metrics"]["tool_calls"] == 1
    # The turns were made in process (agent.model_transport: direct), not through the ASGI fallback.
    assert "instead of direct calls" not in compat_proxy.log(None)


def test_mini_agent_and_codex_agent(compat_proxy, upstream):
    client = compat_proxy.openai()
    reply = client.chat.completions.create(model="agent-demo", messages=[{"role": "user", "content": "hello demo"}])
    assert reply.choices[0].message.content == "hello demo"
    upstream.script("compat-codex", Reply(text="codex over http"))
    assert client.chat.completions.create(model="codex-agent", messages=[{"role": "user", "content": "x"}]).choices[0].message.content == "codex over http"
    upstream.script("compat-codex", Reply(text="codex streamed"))
    stream = client.chat.completions.create(model="codex-agent", messages=[{"role": "user", "content": "x"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "codex streamed"


def test_usage_cost_on_chat_responses_and_embeddings(compat_proxy, upstream):
    client = compat_proxy.openai()
    expected = 10 * IN_PRICE + 5 * OUT_PRICE
    for _ in range(4):
        upstream.script("compat-chat", Reply(text="alpha beta", prompt_tokens=10, completion_tokens=5))
    chat = client.chat.completions.create(model="compat-chat", messages=[{"role": "user", "content": "hi"}])
    assert chat.usage.cost == pytest.approx(expected)
    chunks = list(client.chat.completions.create(model="compat-chat", messages=[{"role": "user", "content": "hi"}], stream=True,
                                                 stream_options={"include_usage": True}))
    assert [c.usage.cost for c in chunks if c.usage is not None] == [pytest.approx(expected)]
    response = client.responses.create(model="compat-chat", input="hi")
    assert response.usage.cost == pytest.approx(expected)
    completed = [e for e in client.responses.create(model="compat-chat", input="hi", stream=True) if e.type == "response.completed"]
    assert completed[0].response.usage.cost == pytest.approx(expected)
    upstream.script("compat-embed", Reply(text="", prompt_tokens=10))
    embedding = httpx.post(f"{compat_proxy.base_url}/v1/embeddings", headers=compat_proxy.headers, timeout=30,
                           json={"model": "compat-embed", "input": ["one", "two"]}).json()
    assert embedding["usage"]["cost"] == pytest.approx(10 * IN_PRICE)


def test_guard_and_auth_refusals(compat_proxy):
    base, headers = compat_proxy.base_url, compat_proxy.headers
    too_big = httpx.post(f"{base}/v1/chat/completions", headers=headers, content=b"x" * 300_000, timeout=30)
    assert too_big.status_code == 413 and too_big.json()["error"]["message"]
    not_an_object = httpx.post(f"{base}/agent/run", headers=headers, content=b"[]", timeout=30)
    assert not_an_object.status_code == 400 and "error" in not_an_object.json()
    assert httpx.post(f"{base}/agent/run", json={"input": "x"}, timeout=30).status_code == 401
    wrong = httpx.post(f"{base}/agent/run", json={"input": "x"}, headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    assert wrong.status_code in (401, 403) and "error" in wrong.json()


def test_the_declared_range_is_the_adapter_s_and_excludes_the_compromised_releases():
    import tomllib

    project = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not project.exists():
        pytest.skip("a compat environment's copy of the tests has no pyproject.toml")
    from proxy_ext.litellm_adapter import SUPPORTED_LITELLM, version_problem
    from tests.compat_run import COMPAT_VERSIONS, OUTSIDE_VERSION
    requirement = next(d for d in tomllib.loads(project.read_text())["project"]["dependencies"] if d.startswith("litellm"))
    assert requirement == f"litellm[proxy]{SUPPORTED_LITELLM}"
    assert all(version_problem(v) for v in ("1.82.7", "1.82.8", "1.107.0", OUTSIDE_VERSION, "1.109.0", "2.0.0"))
    assert not any(version_problem(v) for v in COMPAT_VERSIONS)
    assert "unknown" in version_problem("not-a-version") or "outside" in version_problem("not-a-version")
