"""The foundation through the real proxy: default config, /ready, stock chat, start-up validation."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply

PROXY_EXT_CLI = str(Path(sys.executable).with_name("proxy-ext"))


def test_default_config_serves_echo_without_provider_keys(default_proxy):
    client = default_proxy.openai()
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "ping pong"}])
    assert reply.choices[0].message.content == "ping pong"
    assert reply.usage.completion_tokens == 2

    stream = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert any(c.usage and c.usage.completion_tokens == 3 for c in chunks)


def test_default_config_serves_the_demo_agent_profile_as_a_model(default_proxy):
    client = default_proxy.openai()
    reply = client.chat.completions.create(model="agent-demo", messages=[{"role": "user", "content": "hello demo"}])
    assert reply.choices[0].message.content == "hello demo"
    assert reply.choices[0].message.provider_specific_fields["mini_agent"]["used_model"] == "echo"
    stream = client.chat.completions.create(model="agent-demo", messages=[{"role": "user", "content": "one two"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two"


def test_default_config_serves_echo_on_the_responses_api(default_proxy):
    client = default_proxy.openai()
    response = client.responses.create(model="echo", input="hello responses")
    assert response.output_text == "hello responses" and response.usage.cost == 0.0
    events = list(client.responses.create(model="echo", input="one two", stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two"
    [completed] = [e for e in events if e.type == "response.completed"]
    assert completed.response.usage.cost == 0.0


def test_virtual_keys_need_a_database_as_the_troubleshooting_page_says(default_proxy):
    # docs/troubleshooting.md: without DATABASE_URL, /key/generate answers 500 (LiteLLM 1.108.7).
    response = httpx.post(f"{default_proxy.base_url}/key/generate", headers=default_proxy.headers,
                          json={"models": ["echo"], "allowed_routes": ["llm_api_routes", "/agent/run"]}, timeout=30)
    assert response.status_code == 500 and response.text == "Internal Server Error"


def test_default_config_is_ready(default_proxy):
    response = httpx.get(f"{default_proxy.base_url}/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "status": "ok", "checks": {"router": {"ok": True}}}
    assert response.headers["cache-control"] == "no-store"


def test_default_config_lists_real_models(default_proxy):
    models = {m.id for m in default_proxy.openai().models.list()}
    assert {"echo", "gpt-4o-mini"} <= models


def test_stock_chat_through_fake_upstream_with_extension_on(proxy, upstream):
    upstream.script("foundation-chat", Reply(text="the quick brown fox", prompt_tokens=9, completion_tokens=4))
    client = proxy.openai()
    reply = client.chat.completions.create(model="fake/foundation-chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "the quick brown fox"
    assert reply.usage.prompt_tokens == 9 and reply.usage.completion_tokens == 4

    stream = client.chat.completions.create(
        model="fake/foundation-chat", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "the quick brown fox"
    assert any(c.usage and c.usage.total_tokens == 13 for c in chunks)
    sent = upstream.requests_for("foundation-chat")[-1]
    assert sent["body"]["stream"] is True
    assert sent["headers"]["authorization"] == "Bearer sk-fake-upstream-key"


def test_upstream_errors_reach_the_client_as_errors(proxy, upstream):
    upstream.script("foundation-429", Reply(status=429, error_message="slow down"))
    with pytest.raises(openai.RateLimitError):
        proxy.openai().chat.completions.create(model="fake/foundation-429", messages=[{"role": "user", "content": "hi"}])


def test_metrics_need_a_key(proxy):
    assert httpx.get(f"{proxy.base_url}/metrics").status_code == 401
    response = httpx.get(f"{proxy.base_url}/metrics", headers=proxy.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    # scale.gc_freeze_after_s (default 0): LiteLLM's start-up heap is out of the collector's way
    frozen = re.search(r"^proxy_ext_gc_frozen_objects (\S+)$", response.text, re.M)
    assert frozen and float(frozen.group(1)) > 100_000, response.text[:2000]
    # the freeze itself was a full collection, timed
    collections = re.search(r"^proxy_ext_gc_full_collection_seconds_count (\S+)$", response.text, re.M)
    assert collections and float(collections.group(1)) >= 1, response.text[:2000]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ready_is_503_naming_the_failing_dependencies(upstream, tmp_path):
    # Both checks are made required; a failing optional capability is only "degraded" (test_hardening).
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the trace directory should be")
    tool_host = f"http://127.0.0.1:{_closed_port()}"
    config = base_config(upstream, {"tools": {"http": {"base_url": tool_host}}, "traces": {"enabled": True, "path": str(blocked / "runs.jsonl")},
                                    "ready": {"required": ["traces", "tool_host"]}})
    with ProxyProcess(config) as process:
        response = httpx.get(f"{process.base_url}/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False
        assert body["checks"]["router"] == {"ok": True}
        assert body["checks"]["tool_host"] == {"ok": False, "reason": "tool host unreachable"}
        assert body["checks"]["traces"]["ok"] is False
        assert tool_host not in response.text and str(tmp_path) not in response.text
        assert process.master_key not in response.text


INVALID = {"agent": {"max_iterations": 0, "backend": "ftp"}}


def test_invalid_section_stops_startup_with_a_clear_message(upstream):
    process = ProxyProcess(base_config(upstream, INVALID))
    process.spawn()
    code = process.wait_exit(timeout_s=90)
    log = process.log(None)
    assert code != 0
    assert "proxy_ext.agent.max_iterations = 0" in log and "allowed: a number at least 1" in log
    assert "proxy_ext.agent.backend = 'ftp'" in log and "'local', 'http' or 'echo'" in log


def test_doctor_reports_the_same_problem(upstream, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(base_config(upstream, INVALID)))
    result = subprocess.run([PROXY_EXT_CLI, "doctor", "--config", str(config)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "proxy_ext.agent.max_iterations = 0" in result.stdout and "allowed: a number at least 1" in result.stdout
    assert "FAILED" in result.stdout


def test_without_the_callbacks_line_the_proxy_is_stock(upstream):
    with ProxyProcess(base_config(upstream, INVALID, extension=False)) as process:  # section ignored: stock
        assert httpx.get(f"{process.base_url}/ready").status_code == 404
        reply = process.openai().chat.completions.create(model="echo", messages=[{"role": "user", "content": "stock"}])
        assert reply.choices[0].message.content == "stock"


def test_routes_registered_once_when_loaded_by_file_path(upstream, tmp_path):
    """LiteLLM execs proxy_ext/glue.py by path when it sits next to the config; still one extension."""
    (tmp_path / "proxy_ext").symlink_to(REPO_ROOT / "proxy_ext", target_is_directory=True)
    config = base_config(upstream, {})
    config["litellm_settings"]["callbacks"] = ["proxy_ext.extension", "proxy_ext.glue.extension"]
    path = tmp_path / "proxy_config.yaml"
    path.write_text(yaml.safe_dump(config))
    with ProxyProcess(path, cwd=tmp_path) as process:
        assert httpx.get(f"{process.base_url}/ready").status_code == 200
        spec = httpx.get(f"{process.base_url}/openapi.json", headers=process.headers, timeout=60).json()
        assert "/ready" in spec["paths"]


def test_routes_registered_once_in_process(tmp_path):
    """Import the package, then let LiteLLM's loader exec the module file again: one set of routes."""
    code = f"""
import os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from litellm.proxy import proxy_server
from litellm.proxy.types_utils.utils import get_instance_fn
config = {str(tmp_path / 'proxy_config.yaml')!r}
a = get_instance_fn("proxy_ext.extension", config_file_path=config)
b = get_instance_fn("proxy_ext.glue.extension", config_file_path=config)
import proxy_ext
c = proxy_ext.extension
assert a is b is c, (a, b, c)
def walk(routes):  # FastAPI >= 0.165 keeps included routers as nested objects
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from walk(inner.routes)
        else:
            yield getattr(r, "path", None)
paths = list(walk(proxy_server.app.routes))
print(paths.count("/ready"), paths.count("/metrics"))
"""
    (tmp_path / "proxy_ext").symlink_to(REPO_ROOT / "proxy_ext", target_is_directory=True)
    (tmp_path / "proxy_config.yaml").write_text("model_list: []\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["1", "1"]
