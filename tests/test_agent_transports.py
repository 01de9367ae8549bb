"""The other model transports (``agent.model_transport: asgi``; ``http`` is in test_scale_workers)
pass the same per-turn checks as the default ``direct`` one: model access, the key's rpm and
spend attribution. And ``direct`` falls back to ``asgi`` when LiteLLM's chat route cannot be called."""

from __future__ import annotations

import httpx
import pytest

from proxy_ext.agent import service
from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call
from tests.test_agent import _payloads, envelope_of, run, spend_differences


@pytest.fixture(scope="module")
def asgi_proxy(upstream, tmp_path_factory):
    spend_path = tmp_path_factory.mktemp("spend") / "spend.jsonl"
    config = base_config(upstream, {"agent": {"default_model": "fake/t-default", "model_transport": "asgi",
                                              "profiles": {"limited": {"escalation": ["fake/agent-allowed", "fake/agent-forbidden"]}}}})
    config["litellm_settings"]["callbacks"].append("tests.support.spend_recorder.recorder")
    config["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    with ProxyProcess(config, env={"PYTHONPATH": str(REPO_ROOT), "SPEND_RECORD_PATH": str(spend_path)}) as process:
        process.spend_path = spend_path  # type: ignore[attr-defined]
        yield process


def test_asgi_transport_enforces_model_access_and_rpm_per_turn(asgi_proxy, upstream):
    upstream.script("agent-allowed", Reply(tool_calls=[call("current_time", {})]))
    before = len(upstream.requests_for("agent-forbidden"))
    body = envelope_of(run(asgi_proxy, {"input": "hi", "profile": "limited", "max_iterations": 1}, key="sk-test-limited"))
    assert body["stopped_reason"] == "error" and body["metrics"]["models_tried"] == ["fake/agent-allowed", "fake/agent-forbidden"]
    assert len(upstream.requests_for("agent-forbidden")) == before

    upstream.script("t-rpm", Reply(tool_calls=[call("current_time", {})]))
    body = envelope_of(run(asgi_proxy, {"input": "hi", "model": "fake/t-rpm"}, key="sk-test-rpm"))
    assert body["stopped_reason"] == "error" and body["metrics"]["iterations"] == 2
    assert len(upstream.requests_for("t-rpm")) == 2


def test_asgi_transport_logs_spend_with_the_fields_of_a_direct_call(asgi_proxy, upstream):
    spend_path = asgi_proxy.spend_path
    before = len(_payloads(spend_path, "limited", 0))
    upstream.script("agent-allowed", Reply(text="direct"), Reply(text="agent"))
    direct = httpx.post(f"{asgi_proxy.base_url}/v1/chat/completions", headers={"Authorization": "Bearer sk-test-limited"},
                        json={"model": "fake/agent-allowed", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert direct.status_code == 200, direct.text
    envelope_of(run(asgi_proxy, {"input": "hi", "model": "fake/agent-allowed"}, key="sk-test-limited"))
    differing = spend_differences(*_payloads(spend_path, "limited", before + 2)[before:before + 2])
    assert differing == {}, differing


def test_direct_transport_falls_back_to_asgi_when_the_chat_route_cannot_be_called(monkeypatch, caplog):
    from proxy_ext import litellm_adapter

    monkeypatch.setattr(service, "_direct_problem", [])
    monkeypatch.setattr(litellm_adapter, "direct_chat_problem", lambda: "LiteLLM's chat route has no parameter(s) ['request']")
    assert service.model_transport("direct") == "asgi"
    assert service.model_transport("direct") == "asgi"  # decided once
    assert service.model_transport("http") == "http"
    assert sum("instead of direct calls" in r.getMessage() for r in caplog.records) == 1
    monkeypatch.setattr(service, "_direct_problem", [])
    monkeypatch.setattr(litellm_adapter, "direct_chat_problem", lambda: None)
    assert service.model_transport("direct") == "direct"
