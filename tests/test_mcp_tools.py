"""MCP servers as agent tools, against real MCP servers started by the tests: the official reference
server (stdio and streamable HTTP) and a small fault server written with the ``mcp`` SDK."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call
from tests.harness.proxy import pid_alive
from tests.harness.fake_upstream import free_port

EVERYTHING = REPO_ROOT / "tests" / "mcp_everything" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
FAULTY = REPO_ROOT / "tests" / "support" / "mcp_faulty.py"

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not EVERYTHING.exists(),
                                reason="node or the pinned @modelcontextprotocol/server-everything (make node-deps) is missing")


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mcp-events")


@pytest.fixture(scope="module")
def everything_http() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(["node", str(EVERYTHING), "streamableHttp"], env={**os.environ, "PORT": str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        os.killpg(process.pid, 9)
        process.wait()


def _events(events_dir: Path) -> list[dict]:
    path = events_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def mcp_proxy(upstream, events_dir, everything_http, tmp_path_factory):
    config = base_config(upstream, {
        "agent": {"default_model": "fake/mcp-default", "max_iterations": 6,
                  "profiles": {"mcpsum": {"model": "fake/mcp-profile", "tools": ["everything-*"]}}},
        "tools": {"mcp": {"timeout_s": 8}},  # also bounds a stdio server's start: 8 s holds on a busy 2-core box
    }, models=[{"model_name": "agent-mcp", "litellm_params": {"model": "mini-agent/mcpsum"}}])
    config["mcp_servers"] = {
        "everything": {"transport": "stdio", "command": "node", "args": [str(EVERYTHING), "stdio"]},
        "everything_http": {"transport": "http", "url": everything_http},
        "faulty": {"transport": "stdio", "command": sys.executable, "args": [str(FAULTY), str(events_dir)]},
        "broken": {"transport": "stdio", "command": str(tmp_path_factory.mktemp("none") / "no-such-server")},
    }
    config["general_settings"]["custom_auth"] = "tests.support.mcp_auth.user_api_key_auth"
    env = {"LITELLM_ENABLE_MCP_STDIO": "true", "PYTHONPATH": str(REPO_ROOT)}
    with ProxyProcess(config, env=env) as process:
        yield process


def run(proxy, body: dict, key: str | None = None, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}/agent/run", json=body, headers={"Authorization": f"Bearer {key or proxy.master_key}"}, timeout=timeout)


def envelope(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def tool_message(body: dict, index: int = 0) -> str:
    return [m for m in body["messages"] if m["role"] == "tool"][index]["content"]


# ----------------------------------------------------------------------------------- the reference server

@pytest.mark.parametrize("server", ["everything", "everything_http"])
def test_the_reference_server_answers_through_the_agent(mcp_proxy, upstream, server):
    model = f"mcp-sum-{server}"
    upstream.script(model, Reply(tool_calls=[call(f"{server}-get-sum", {"a": 2, "b": 3}, "c1")]), Reply(text="The sum is 5."))
    body = envelope(run(mcp_proxy, {"input": "2+3?", "model": f"fake/{model}"}))
    assert body["ok"] and body["final_answer"] == "The sum is 5." and body["metrics"]["tool_calls"] == 1
    assert tool_message(body) == "The sum of 2 and 3 is 5."
    offered = {t["function"]["name"] for t in upstream.requests_for(model)[0]["body"]["tools"]}
    assert {f"{server}-get-sum", f"{server}-echo", "calculator"} <= offered  # one tool list: MCP + local tools
    schema = next(t for t in upstream.requests_for(model)[0]["body"]["tools"] if t["function"]["name"] == f"{server}-get-sum")
    assert set(schema["function"]["parameters"]["properties"]) == {"a", "b"}


def test_structured_content_and_images_become_text(mcp_proxy, upstream):
    upstream.script("mcp-kinds", Reply(tool_calls=[call("everything-get-structured-content", {"location": "New York"}, "a"),
                                                   call("everything-get-tiny-image", {}, "b")]), Reply(text="done"))
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-kinds"}))
    weather = json.loads(tool_message(body, 0))
    assert set(weather) == {"temperature", "conditions", "humidity"}
    image = tool_message(body, 1)
    assert "[image: image/png," in image and "iVBOR" not in image  # described, never inlined


def test_sse_events_and_the_trace_show_the_call(mcp_proxy, upstream):
    upstream.script("mcp-sse", Reply(tool_calls=[call("everything-echo", {"message": "hi there"}, "e1")]), Reply(text="echoed"))
    with httpx.stream("POST", f"{mcp_proxy.base_url}/agent/run", headers=mcp_proxy.headers, timeout=60,
                      json={"input": "x", "model": "fake/mcp-sse", "stream": True}) as response:
        text = "".join(response.iter_text())
    assert 'event: tool_call\ndata: {"id":"e1","name":"everything-echo"' in text
    assert '"name":"everything-echo","ok":true,"content":"Echo: hi there"' in text
    assert "event: run_completed" in text


def test_a_profile_names_mcp_tools_and_serves_them_as_a_model(mcp_proxy, upstream):
    upstream.script("mcp-profile", Reply(tool_calls=[call("everything-get-sum", {"a": 40, "b": 2})]), Reply(text="42"))
    reply = mcp_proxy.openai().chat.completions.create(model="agent-mcp", messages=[{"role": "user", "content": "40+2"}])
    assert reply.choices[0].message.content == "42"
    offered = {t["function"]["name"] for t in upstream.requests_for("mcp-profile")[-1]["body"]["tools"]}
    assert offered and all(name.startswith("everything-") for name in offered)  # only the profile's pattern


# ----------------------------------------------------------------------------------- multi-round and faults

def test_three_sequential_mcp_calls_in_one_run(mcp_proxy, upstream, events_dir):
    upstream.script("mcp-steps", *(Reply(tool_calls=[call("faulty-step", {"n": n})]) for n in (1, 2, 3)), Reply(text="finished"))
    body = envelope(run(mcp_proxy, {"input": "do three steps", "model": "fake/mcp-steps"}))
    assert body["ok"] and body["metrics"]["tool_calls"] == 3 and body["metrics"]["iterations"] == 4
    assert tool_message(body, 2) == "all 3 steps done"
    assert [e["n"] for e in _events(events_dir) if e["event"] == "step"][-3:] == [1, 2, 3]


def test_parallel_calls_keep_their_order(mcp_proxy, upstream):
    upstream.script("mcp-parallel", Reply(tool_calls=[call("faulty-slow", {"seconds": 0.6}, "s1"), call("faulty-step", {"n": 1}, "s2"),
                                                      call("everything-get-sum", {"a": 1, "b": 1}, "s3")]), Reply(text="ok"))
    started = time.monotonic()
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-parallel"}))
    assert [tool_message(body, i)[:12] for i in range(3)] == ["slept 0.6", "step 1 done;", "The sum of 1"]
    assert time.monotonic() - started < 5


def test_a_crashed_server_is_a_tool_error_and_restarts(mcp_proxy, upstream, events_dir):
    upstream.script("mcp-crash", Reply(tool_calls=[call("faulty-crash", {})]), Reply(tool_calls=[call("faulty-whoami", {})]),
                    Reply(text="survived"))
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-crash"}))
    assert body["ok"] and body["final_answer"] == "survived"
    crashed = json.loads(tool_message(body, 0))
    assert crashed["ok"] is False and "faulty-crash" in crashed["error"]
    crashed_pid = next(e["pid"] for e in reversed(_events(events_dir)) if e["event"] == "crash")
    assert int(tool_message(body, 1)) != crashed_pid  # a new server process answered


@pytest.mark.parametrize("name, arguments, needle", [
    ("faulty-fail", {"message": "the disk is full"}, "the disk is full"),
    ("broken-anything", {}, "unknown tool"),
])
def test_tool_errors_reach_the_model(mcp_proxy, upstream, name, arguments, needle):
    model = f"mcp-err-{name}"
    upstream.script(model, Reply(tool_calls=[call(name, arguments)]), Reply(text="handled"))
    body = envelope(run(mcp_proxy, {"input": "x", "model": f"fake/{model}"}))
    assert body["ok"] and body["final_answer"] == "handled"
    result = json.loads(tool_message(body))
    assert result["ok"] is False and needle in result["error"]


def test_huge_output_is_capped(mcp_proxy, upstream):
    upstream.script("mcp-huge", Reply(tool_calls=[call("faulty-huge", {"kib": 2048})]), Reply(text="ok"))
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-huge"}))
    assert len(tool_message(body).encode()) < 70_000 and "[truncated:" in tool_message(body)


def test_a_call_past_the_timeout_is_cancelled_at_the_server(mcp_proxy, upstream, events_dir):
    upstream.script("mcp-slow", Reply(tool_calls=[call("faulty-slow", {"seconds": 30, "tag": "timeout"})]), Reply(text="gave up"))
    started = time.monotonic()
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-slow"}))
    assert time.monotonic() - started < 20
    assert "did not answer within 8 s" in json.loads(tool_message(body))["error"]
    _wait_for(lambda: any(e["event"] in ("slow_cancelled", "exited") and e.get("tag", "timeout") == "timeout"
                          for e in _events(events_dir)[-6:]), "the server never saw the call end")


def test_a_client_that_hangs_up_cancels_the_mcp_call(mcp_proxy, upstream, events_dir):
    upstream.script("mcp-hangup", Reply(tool_calls=[call("faulty-slow", {"seconds": 30, "tag": "hangup"})]), Reply(text="never"))
    with socket.create_connection(("127.0.0.1", mcp_proxy.port)) as sock:
        raw = json.dumps({"input": "x", "model": "fake/mcp-hangup"}).encode()
        sock.sendall(f"POST /agent/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {mcp_proxy.master_key}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
        _wait_for(lambda: any(e["event"] == "slow_started" and e.get("tag") == "hangup" for e in _events(events_dir)), "the call never started", timeout_s=45)  # a cold server start on a loaded 2-core box
    pid = next(e["pid"] for e in _events(events_dir) if e.get("tag") == "hangup")
    _wait_for(lambda: any(e["event"] in ("slow_cancelled", "exited") and e["pid"] == pid for e in _events(events_dir)), "no cancel at the server")
    _wait_for(lambda: not pid_alive(pid), "the cancelled call's server process is still alive")
    assert len(upstream.requests_for("mcp-hangup")) == 1  # no model call after the hang-up


# ----------------------------------------------------------------------------------- permissions

def test_a_key_sees_only_its_mcp_servers_and_tools(mcp_proxy, upstream):
    response = run(mcp_proxy, {"input": "x", "model": "fake/mcp-perm", "tools": ["everything-*"]}, key="sk-mcp-faulty-only")
    assert response.status_code == 400 and "unknown tool" in response.json()["error"]["message"]
    upstream.script("mcp-perm", Reply(text="listed"))
    envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-perm"}, key="sk-mcp-faulty-only"))
    offered = {t["function"]["name"] for t in upstream.requests_for("mcp-perm")[-1]["body"]["tools"]}
    assert {n for n in offered if "-" in n} and all(n.startswith("faulty-") for n in offered if "-" in n)
    envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-perm"}, key="sk-mcp-sum-only"))
    offered = {t["function"]["name"] for t in upstream.requests_for("mcp-perm")[-1]["body"]["tools"]}
    assert {n for n in offered if "-" in n} == {"everything-get-sum"}


def test_a_forged_call_to_a_refused_tool_is_a_tool_error(mcp_proxy, upstream, events_dir):
    before = len([e for e in _events(events_dir) if e["event"] == "step"])
    upstream.script("mcp-forged", Reply(tool_calls=[call("faulty-step", {"n": 9}), call("everything-echo", {"message": "x"})]),
                    Reply(text="refused"))
    body = envelope(run(mcp_proxy, {"input": "x", "model": "fake/mcp-forged"}, key="sk-mcp-sum-only"))
    assert all(json.loads(tool_message(body, i))["ok"] is False for i in range(2))
    assert len([e for e in _events(events_dir) if e["event"] == "step"]) == before  # never reached the server


# ----------------------------------------------------------------------------------- operations

def test_ready_reports_each_mcp_server(mcp_proxy):
    body = httpx.get(f"{mcp_proxy.base_url}/ready", timeout=30).json()
    assert body["checks"]["mcp_everything"]["ok"] is True and body["checks"]["mcp_faulty"]["ok"] is True
    assert body["checks"]["mcp_broken"]["ok"] is False and "mcp_broken" in body["failing"]
    assert body["status"] == "degraded"


def test_metrics_count_mcp_calls_by_server_tool_and_outcome(mcp_proxy):
    text = httpx.get(f"{mcp_proxy.base_url}/metrics", headers=mcp_proxy.headers, timeout=10).text
    assert 'proxy_ext_mcp_tool_calls_total{outcome="ok",server="everything",tool="everything-get-sum"}' in text
    assert 'proxy_ext_mcp_tool_calls_total{outcome="tool_error",server="faulty",tool="faulty-fail"}' in text
    assert 'proxy_ext_mcp_tool_calls_total{outcome="timeout",server="faulty",tool="faulty-slow"}' in text


def test_no_server_process_outlives_the_proxy(upstream, events_dir, tmp_path):
    config = base_config(upstream, {"agent": {"default_model": "fake/mcp-last"}})
    config["mcp_servers"] = {"faulty": {"transport": "stdio", "command": sys.executable, "args": [str(FAULTY), str(tmp_path)]}}
    upstream.script("mcp-last", Reply(tool_calls=[call("faulty-whoami", {})]), Reply(text="bye"))
    proxy = ProxyProcess(config, env={"LITELLM_ENABLE_MCP_STDIO": "true"})
    with proxy:
        body = envelope(run(proxy, {"input": "x"}))
        pid = int(tool_message(body))
        assert pid_alive(pid)
        os.kill(proxy.process.pid, 15)  # the proxy only, not its process group
        proxy.process.wait(timeout=30)
        _wait_for(lambda: not pid_alive(pid), "the MCP server process outlived the proxy")


def _wait_for(condition, message: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message)
        time.sleep(0.05)


def test_doctor_reports_the_mcp_servers(tmp_path, monkeypatch):
    import yaml

    from proxy_ext.cli import diagnose

    monkeypatch.delenv("LITELLM_ENABLE_MCP_STDIO", raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "mcp_servers": {"everything": {"transport": "stdio", "command": "node", "args": [str(EVERYTHING)]},
                        "gone": {"transport": "stdio", "command": "/nonexistent/server"},
                        "remote": {"transport": "http", "url": "http://127.0.0.1:9/mcp"}},
    }))
    report = diagnose(path)
    assert report.capabilities["mcp tools"] == "on (everything (stdio), gone (stdio), remote (http))"
    assert any("LITELLM_ENABLE_MCP_STDIO=true" in w for w in report.warnings)
    assert any("mcp_servers.gone" in p and "not found" in p for p in report.problems)
