"""POST /agent/run through the real proxy and the fake upstream."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call, fake_model_entry

PRICE_IN, PRICE_OUT = 0.001, 0.002  # USD per token of the priced test models


@pytest.fixture(scope="module")
def spend_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spend") / "spend.jsonl"


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("traces") / "runs.jsonl"


@pytest.fixture(scope="module")
def agent_proxy(upstream, spend_path, trace_path):
    priced = [fake_model_entry(name, upstream.base_url, name.removeprefix("priced/"),
                               input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT)
              for name in ("priced/budget-cheap", "priced/budget-strong", "priced/cost")]
    config = base_config(upstream, {
        "agent": {
            "default_model": "fake/agent-default",
            "max_iterations": 4,
            "profiles": {
                "loop": {"escalation": ["fake/loop-cheap", "fake/loop-strong"], "max_iterations": 2},
                "esc500": {"escalation": ["fake/e500-cheap", "fake/e500-strong"]},
                "budget": {"escalation": ["priced/budget-cheap", "priced/budget-strong"]},
                "toolerr": {"escalation": ["fake/toolerr-cheap", "fake/toolerr-strong"]},
                "limited": {"escalation": ["fake/agent-allowed", "fake/agent-forbidden"]},
                "slow": {"escalation": ["fake/slow-cheap", "fake/slow-strong"]},
            },
            "limits": {"max_request_bytes": 20_000, "max_iterations": 10, "timeout_s": 30},
            "budget": {"timeout_s": 20},
        },
        "traces": {"enabled": True, "path": str(trace_path), "redact_patterns": ["secret-[0-9]+"]},
    }, models=priced)
    config["litellm_settings"]["callbacks"].append("tests.support.spend_recorder.recorder")
    config["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    env = {"PYTHONPATH": str(REPO_ROOT), "SPEND_RECORD_PATH": str(spend_path)}
    with ProxyProcess(config, env=env) as process:
        yield process


def run(proxy, body: dict, key: str | None = None, timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or proxy.master_key}"}
    return httpx.post(f"{proxy.base_url}/agent/run", json=body, headers=headers, timeout=timeout)


def envelope_of(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ok", "final_answer", "stopped_reason", "messages", "metrics"}
    assert {"iterations", "tool_calls", "escalated", "used_model", "models_tried", "prompt_tokens",
            "completion_tokens", "cost_usd", "duration_ms", "trace_id"} <= set(body["metrics"])
    return body


def test_tool_call_then_answer(agent_proxy, upstream):
    upstream.script("agent-default", Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "call_1")]),
                    Reply(text="The answer is 42."))
    body = envelope_of(run(agent_proxy, {"input": "what is 6 times 7?"}))
    assert body["ok"] is True and body["stopped_reason"] == "final_answer"
    assert body["final_answer"] == "The answer is 42."
    m = body["metrics"]
    assert (m["iterations"], m["tool_calls"], m["escalated"], m["used_model"]) == (2, 1, False, "fake/agent-default")
    assert m["models_tried"] == ["fake/agent-default"]
    assert (m["prompt_tokens"], m["completion_tokens"]) == (22, 14)
    roles = [msg["role"] for msg in body["messages"]]
    assert roles == ["assistant", "tool", "assistant"]
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    # The second model call saw the tool result and the tool definitions.
    second = upstream.requests_for("agent-default")[-1]["body"]
    assert second["messages"][-1]["content"] == "42"
    assert {t["function"]["name"] for t in second["tools"]} >= {"calculator", "current_time"}


def test_echo_backend_makes_no_model_call(agent_proxy, upstream):
    before = len(upstream.requests)
    body = envelope_of(run(agent_proxy, {"input": "hello echo", "backend": "echo"}))
    assert body["final_answer"] == "hello echo" and body["ok"]
    assert len(upstream.requests) == before


def test_never_stopping_model_escalates_then_falls_back(agent_proxy, upstream):
    loop = Reply(tool_calls=[call("current_time", {})])
    upstream.script("loop-cheap", loop)
    upstream.script("loop-strong", loop, loop, Reply(text="plain answer"))
    body = envelope_of(run(agent_proxy, {"input": "loop forever", "profile": "loop"}))
    assert body["stopped_reason"] == "fallback" and body["ok"] is True
    assert body["final_answer"] == "plain answer"
    m = body["metrics"]
    assert m["escalated"] is True
    assert m["models_tried"] == ["fake/loop-cheap", "fake/loop-strong", "fake/loop-strong"]
    assert m["iterations"] == 5 and m["tool_calls"] == 4
    fallback_request = upstream.requests_for("loop-strong")[-1]["body"]
    assert "tools" not in fallback_request  # one plain completion
    assert [x["role"] for x in fallback_request["messages"]] == ["user"]


def test_cheap_model_500_escalates(agent_proxy, upstream):
    upstream.script("e500-cheap", Reply(status=500, error_message="cheap is down"))
    upstream.script("e500-strong", Reply(text="strong answers"))
    body = envelope_of(run(agent_proxy, {"input": "hi", "profile": "esc500"}))
    assert body["ok"] and body["stopped_reason"] == "final_answer"
    m = body["metrics"]
    assert m["escalated"] is True and m["used_model"] == "fake/e500-strong"
    assert m["models_tried"] == ["fake/e500-cheap", "fake/e500-strong"]


def test_repeated_tool_errors_escalate(agent_proxy, upstream):
    bad = Reply(tool_calls=[call("calculator", {"expression": "import os"})])
    upstream.script("toolerr-cheap", bad, bad, bad)
    upstream.script("toolerr-strong", Reply(text="done"))
    body = envelope_of(run(agent_proxy, {"input": "compute", "profile": "toolerr"}))
    assert body["ok"] and body["metrics"]["escalated"] and body["metrics"]["used_model"] == "fake/toolerr-strong"
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 3 and all('"ok": false' in m["content"] for m in tool_messages)


def test_every_model_failing_without_fallback_answer_is_an_error_envelope(agent_proxy, upstream):
    upstream.script("e500-cheap", Reply(status=500))
    upstream.script("e500-strong", Reply(status=500))
    body = envelope_of(run(agent_proxy, {"input": "hi", "profile": "esc500"}))
    assert body["ok"] is False and body["stopped_reason"] == "error" and body["final_answer"] is None
    assert "500" in body["metrics"]["error"] or "down" in body["metrics"]["error"] or "error" in body["metrics"]["error"]


def test_budget_exceeded_mid_run_keeps_transcript_and_never_escalates(agent_proxy, upstream):
    step = Reply(tool_calls=[call("current_time", {})], prompt_tokens=100, completion_tokens=50)
    upstream.script("budget-cheap", step, step, step, Reply(text="never reached"))
    upstream.script("budget-strong", Reply(text="must not be called"))
    before_strong = len(upstream.requests_for("budget-strong"))
    # Each turn costs 100*0.001 + 50*0.002 = 0.2 USD; the budget allows two turns.
    body = envelope_of(run(agent_proxy, {"input": "spend", "profile": "budget", "budget": {"max_cost_usd": 0.35}}))
    assert body["ok"] is False and body["stopped_reason"] == "budget_exceeded"
    m = body["metrics"]
    assert m["iterations"] == 2 and m["escalated"] is False and m["models_tried"] == ["priced/budget-cheap"]
    assert m["cost_usd"] == pytest.approx(0.4)
    assert [x["role"] for x in body["messages"]] == ["assistant", "tool", "assistant", "tool"]
    assert len(upstream.requests_for("budget-strong")) == before_strong

    upstream.script("budget-cheap", step, step, step)
    body = envelope_of(run(agent_proxy, {"input": "tokens", "profile": "budget", "budget": {"max_tokens": 200}}))
    assert body["stopped_reason"] == "budget_exceeded" and body["metrics"]["iterations"] == 2


def test_cost_is_the_sum_of_litellm_response_costs(agent_proxy, upstream):
    upstream.script("cost", Reply(tool_calls=[call("current_time", {})], prompt_tokens=10, completion_tokens=5),
                    Reply(text="ok", prompt_tokens=20, completion_tokens=10))
    body = envelope_of(run(agent_proxy, {"input": "cost?", "model": "priced/cost"}))
    assert body["metrics"]["cost_usd"] == pytest.approx((10 + 20) * PRICE_IN + (5 + 10) * PRICE_OUT)


def test_timeout_stops_without_fallback(agent_proxy, upstream):
    upstream.script("slow-cheap", Reply(text="late", latency_s=3))
    upstream.script("slow-strong", Reply(text="must not be called"))
    before_strong = len(upstream.requests_for("slow-strong"))
    started = time.monotonic()
    body = envelope_of(run(agent_proxy, {"input": "hurry", "profile": "slow", "budget": {"timeout_s": 1}}))
    assert time.monotonic() - started < 2.5
    assert body["stopped_reason"] == "timeout" and body["ok"] is False
    assert body["metrics"]["escalated"] is False
    assert len(upstream.requests_for("slow-strong")) == before_strong


def test_parallel_tool_calls_run_concurrently_and_keep_order(agent_proxy, upstream):
    calls = [call("calculator", {"expression": f"{i} * 10"}, f"call_{i}") for i in range(5)]
    upstream.script("agent-parallel", Reply(tool_calls=calls), Reply(text="all done"))
    body = envelope_of(run(agent_proxy, {"input": "five sums", "model": "fake/agent-parallel"}))
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [f"call_{i}" for i in range(5)]
    assert [m["content"] for m in tool_messages] == [str(i * 10) for i in range(5)]


# ----------------------------------------------------------------------------- identity and access


def test_key_limited_to_one_model_cannot_make_the_agent_use_another(agent_proxy, upstream):
    upstream.script("agent-allowed", Reply(text="allowed answer"))
    body = envelope_of(run(agent_proxy, {"input": "hi", "model": "fake/agent-allowed"}, key="sk-test-limited"))
    assert body["final_answer"] == "allowed answer"

    before = len(upstream.requests_for("agent-forbidden"))
    response = run(agent_proxy, {"input": "hi", "model": "fake/agent-forbidden"}, key="sk-test-limited")
    assert response.status_code in (401, 403), response.text
    assert "fake/agent-forbidden" in response.json()["error"]["message"]
    # Escalation cannot bypass it either: the allowed model loops, the next one is refused.
    upstream.script("agent-allowed", Reply(tool_calls=[call("current_time", {})]))
    body = envelope_of(run(agent_proxy, {"input": "hi", "profile": "limited", "max_iterations": 1}, key="sk-test-limited"))
    assert body["ok"] is False and body["stopped_reason"] == "error"
    assert body["metrics"]["models_tried"] == ["fake/agent-allowed", "fake/agent-forbidden"]
    assert len(upstream.requests_for("agent-forbidden")) == before


def test_key_rate_limit_applies_to_agent_model_calls(agent_proxy, upstream):
    # The key may make two model requests a minute: the third model turn of the run is refused.
    upstream.script("agent-rpm", Reply(tool_calls=[call("current_time", {})]))
    body = envelope_of(run(agent_proxy, {"input": "hi", "model": "fake/agent-rpm"}, key="sk-test-rpm"))
    assert body["ok"] is False and body["stopped_reason"] == "error"
    assert body["metrics"]["iterations"] == 2
    assert "429" in body["metrics"]["error"] or "rate" in body["metrics"]["error"].lower()
    assert len(upstream.requests_for("agent-rpm")) == 2


def test_key_without_the_route_gets_403(agent_proxy):
    response = run(agent_proxy, {"input": "hi"}, key="sk-test-chat-only")
    assert response.status_code in (401, 403)


def test_spend_is_recorded_against_the_callers_key(agent_proxy, upstream, spend_path):
    upstream.script("agent-allowed", Reply(text="charged"))
    envelope_of(run(agent_proxy, {"input": "hi", "model": "fake/agent-allowed"}, key="sk-test-limited"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # whole lines only: the proxy may be writing the last one right now
        records = [json.loads(line) for line in spend_path.read_text().split("\n")[:-1] if line] if spend_path.exists() else []
        if any(r["key_alias"] == "limited" for r in records):
            break
        time.sleep(0.2)
    assert any(r["key_alias"] == "limited" and "agent-allowed" in str(r["model"]) for r in records), records


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("body, status, needle", [
    ({}, 422, "give either messages"),
    ({"messages": []}, 422, "at least one"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 422, "role"),
    ({"input": "x", "backend": "ftp"}, 422, "backend"),
    ({"input": "x", "model": "no-such-model"}, 400, "unknown model"),
    ({"input": "x", "model": "mini-agent/foo"}, 400, "agent profile"),
    ({"input": "x", "tools": ["no_such_tool"]}, 400, "unknown tool"),
    ({"input": "x", "max_iterations": 0}, 422, "max_iterations"),
    ({"input": "x", "max_iterations": 11}, 400, "exceeds"),
    ({"input": "x", "budget": {"timeout_s": -1}}, 422, "timeout_s"),
    ({"input": "x", "budget": {"timeout_s": 31}}, 400, "exceeds"),
    ({"input": "x", "profile": "nope"}, 400, "unknown profile"),
    ({"input": "x", "surprise": 1}, 422, "surprise"),
])
def test_bad_requests_get_clear_4xx(agent_proxy, body, status, needle):
    response = run(agent_proxy, body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_oversized_and_malformed_bodies(agent_proxy):
    response = run(agent_proxy, {"input": "x" * 30_000})
    assert response.status_code == 413 and "max_request_bytes" in response.json()["error"]["message"]
    response = httpx.post(f"{agent_proxy.base_url}/agent/run", content=b"{not json", headers=agent_proxy.headers)
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]


def test_missing_or_wrong_key_is_401(proxy, agent_proxy):
    # The stock auth (proxy) and a custom_auth deployment (agent_proxy) both guard the route.
    for target in (proxy, agent_proxy):
        assert httpx.post(f"{target.base_url}/agent/run", json={"input": "x"}).status_code == 401
        response = httpx.post(f"{target.base_url}/agent/run", json={"input": "x"}, headers={"Authorization": "Bearer sk-wrong"})
        assert 400 <= response.status_code < 500  # the proxy's own answer for an unknown key


# ---------------------------------------------------------------------------------------- SSE


def test_stream_sends_progress_events_then_the_envelope(agent_proxy, upstream):
    upstream.script("agent-stream", Reply(tool_calls=[call("calculator", {"expression": "1+1"}, "c1")]), Reply(text="two"))
    events = []
    with httpx.stream("POST", f"{agent_proxy.base_url}/agent/run", headers=agent_proxy.headers,
                      json={"input": "1+1?", "model": "fake/agent-stream", "stream": True}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds == ["run_started", "model_turn", "tool_call", "tool_result", "answer_delta", "model_turn", "run_completed"]
    assert events[3][1]["content"] == "2"
    assert events[4][1] == {"text": "two"}  # the answer streams as the model writes it
    assert events[-1][1]["final_answer"] == "two" and events[-1][1]["ok"] is True


def test_stream_answer_deltas_arrive_as_produced_and_cost_still_adds_up(agent_proxy, upstream):
    upstream.script("cost", Reply(tool_calls=[call("current_time", {})], prompt_tokens=10, completion_tokens=5),
                    Reply(text="one two three", chunk_delay_s=0.3, prompt_tokens=20, completion_tokens=10))
    started, deltas, envelope = time.monotonic(), [], None
    with httpx.stream("POST", f"{agent_proxy.base_url}/agent/run", headers=agent_proxy.headers,
                      json={"input": "count", "model": "priced/cost", "stream": True}, timeout=30) as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "answer_delta":
                deltas.append((time.monotonic() - started, json.loads(line[6:])["text"]))
            elif line.startswith("data: ") and kind == "run_completed":
                envelope = json.loads(line[6:])
    assert "".join(text for _, text in deltas) == "one two three" == envelope["final_answer"]
    assert deltas[-1][0] - deltas[0][0] > 0.4
    # Streamed model calls carry their cost in the usage chunk; the run's cost is still LiteLLM's sum.
    assert envelope["metrics"]["cost_usd"] == pytest.approx((10 + 20) * PRICE_IN + (5 + 10) * PRICE_OUT)
    assert (envelope["metrics"]["prompt_tokens"], envelope["metrics"]["completion_tokens"]) == (30, 15)


def test_stream_disconnect_cancels_the_run(agent_proxy, upstream, trace_path):
    upstream.script("agent-hang", Reply(text="too late", latency_s=8))
    with httpx.stream("POST", f"{agent_proxy.base_url}/agent/run", headers=agent_proxy.headers,
                      json={"input": "hang", "model": "fake/agent-hang", "stream": True}, timeout=30) as response:
        trace_id = response.headers["x-proxy-ext-trace-id"]
        for line in response.iter_lines():
            if line.startswith("event: run_started"):
                break
    disconnected = time.monotonic()
    # The run is cancelled well before the model would have answered; its trace record says so.
    record = None
    while time.monotonic() - disconnected < 5 and record is None:
        lines = trace_path.read_text().splitlines() if trace_path.exists() else []
        record = next((json.loads(x) for x in lines if trace_id in x), None)
        time.sleep(0.1)
    assert record is not None, "no trace record for the cancelled run"
    assert record["cancelled"] is True and record["envelope"] is None
    assert record["finished_at"] - record["started_at"] < 5
    upstream.script("agent-after", Reply(text="after"))
    assert envelope_of(run(agent_proxy, {"input": "x", "model": "fake/agent-after"}))["ok"]


def test_metrics_count_runs_by_stopped_reason(agent_proxy, upstream):
    upstream.script("agent-metrics", Reply(text="counted"))
    envelope_of(run(agent_proxy, {"input": "x", "model": "fake/agent-metrics"}))
    text = httpx.get(f"{agent_proxy.base_url}/metrics", headers=agent_proxy.headers).text
    assert 'proxy_ext_agent_runs_total{stopped_reason="final_answer"}' in text
    assert "proxy_ext_agent_run_duration_seconds_bucket" in text
    assert 'proxy_ext_agent_model_turn_duration_seconds_count{outcome="ok"}' in text


# ------------------------------------------------------------------------------------- traces


def test_trace_records_are_one_valid_line_per_run_with_secrets_redacted(agent_proxy, upstream, trace_path):
    upstream.script("agent-trace", Reply(text="my secret-12345 is safe"))
    body = envelope_of(run(agent_proxy, {"input": "key sk-abcdefghijklmnop please", "model": "fake/agent-trace"}))
    trace_id = body["metrics"]["trace_id"]
    text = trace_path.read_text()
    records = [json.loads(line) for line in text.splitlines()]
    record = next(r for r in records if r["trace_id"] == trace_id)
    assert record["envelope"]["final_answer"] == "my [REDACTED] is safe"
    assert "sk-abcdefghijklmnop" not in text and agent_proxy.master_key not in text
    assert record["request"]["headers"]["authorization"] == "[REDACTED]"
    assert [s["type"] for s in record["steps"]] == ["model_turn"]


def test_fifty_concurrent_runs_all_ok(agent_proxy, upstream):
    import concurrent.futures

    upstream.script("agent-many", Reply(text="fine", latency_s=0.05))
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda i: run(agent_proxy, {"input": f"run {i}", "model": "fake/agent-many"}), range(50)))
    bodies = [envelope_of(r) for r in responses]
    assert all(b["ok"] and b["final_answer"] == "fine" for b in bodies)
    assert len({b["metrics"]["trace_id"] for b in bodies}) == 50


# ------------------------------------------------------------------ spend logging, field by field

# What differs between any two calls (ids, clocks, content, the tools offered); everything else of
# the payload LiteLLM builds its spend logs from must be the same for an agent turn and a direct call.
_PER_CALL = {"id", "trace_id", "startTime", "endTime", "completionStartTime", "response_time", "messages", "response",
             "model_parameters", "hidden_params", "metadata.usage_object", "metadata.spend_logs_metadata",
             "litellm_call_id", "metadata.user_api_key_request_route"}


# Hop-by-hop and body-describing headers are the connection's, not the caller's: a model turn
# carries the caller's other headers (tests/test_agent_units: forwardable_headers).
_CONNECTION_HEADERS = {"host", "accept", "accept-encoding", "connection", "content-length"}


def _flatten(value: dict, prefix: str = "") -> dict:
    flat = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and name in ("metadata",):
            flat.update(_flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def spend_differences(direct: dict, turn: dict) -> dict:
    """Fields of two logged payloads that differ, beyond what differs between any two calls."""
    a, b = _flatten(direct), _flatten(turn)
    for flat in (a, b):
        headers = flat["metadata.requester_metadata"]["headers"]
        flat["metadata.requester_metadata"]["headers"] = {k: v for k, v in headers.items() if k not in _CONNECTION_HEADERS}
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if k not in _PER_CALL and a.get(k) != b.get(k)}


def _payloads(spend_path: Path, alias: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # whole lines only: the proxy may be writing the last one right now
        records = [json.loads(line) for line in spend_path.read_text().split("\n")[:-1] if line] if spend_path.exists() else []
        mine = [r["payload"] for r in records if r["key_alias"] == alias and r.get("payload")]
        if len(mine) >= count:
            return mine
        time.sleep(0.2)
    raise AssertionError(f"{count} spend records for {alias!r} did not arrive")


def test_spend_logged_per_turn_has_the_fields_of_a_direct_call(agent_proxy, upstream, spend_path):
    before = len(_payloads(spend_path, "limited", 0))
    upstream.script("agent-allowed", Reply(text="direct", prompt_tokens=7, completion_tokens=3),
                    Reply(text="agent", prompt_tokens=7, completion_tokens=3))
    direct = httpx.post(f"{agent_proxy.base_url}/v1/chat/completions", headers={"Authorization": "Bearer sk-test-limited"},
                        json={"model": "fake/agent-allowed", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert direct.status_code == 200, direct.text
    direct_payload = _payloads(spend_path, "limited", before + 1)[before]
    envelope_of(run(agent_proxy, {"input": "hi", "model": "fake/agent-allowed"}, key="sk-test-limited"))
    turn_payload = _payloads(spend_path, "limited", before + 2)[before + 1]
    differing = spend_differences(direct_payload, turn_payload)
    assert differing == {}, json.dumps(differing, indent=1, default=str)[:6000]
    assert turn_payload["metadata"]["user_api_key_alias"] == "limited" and turn_payload["model_group"] == "fake/agent-allowed"
