"""Durable agent runs through the real proxy: background runs, events with Last-Event-ID, cancel,
approvals (approve, deny, expiry), ownership, a killed instance, and a thousand queued runs."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call

OTHER_KEY = "sk-test-runs-other"  # a custom_auth identity (tests/support/custom_auth.py) that is not the creator


@pytest.fixture(scope="module")
def effects(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("effects") / "effects.jsonl"


def _config(upstream, effects: Path, tmp: Path, **runs) -> tuple[dict, dict]:
    config = base_config(upstream, {
        "agent": {"default_model": "fake/runs-default", "max_iterations": 8,
                  "local_tools": ["tests.support.side_effects.record_note"],
                  "limits": {"max_concurrent_runs": 4},
                  "profiles": {"careful": {"model": "fake/runs-careful", "requires_approval": ["record_*"]}}},
        "runs": {"path": str(tmp / "runs.sqlite3"), "lease_s": 2, "poll_interval_s": 0.05, **runs},
    })
    config["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    config["general_settings"]["custom_auth_run_common_checks"] = True  # model access as for database keys
    config["litellm_settings"]["enable_post_custom_auth_checks"] = True
    env = {"PYTHONPATH": str(REPO_ROOT), "SIDE_EFFECTS_PATH": str(effects)}
    return config, env


@pytest.fixture(scope="module")
def runs_proxy(upstream, effects, tmp_path_factory):
    config, env = _config(upstream, effects, tmp_path_factory.mktemp("runs"), approval_timeout_s=1.5)
    with ProxyProcess(config, env=env) as process:
        yield process


def post(proxy, path: str, body: dict | None = None, key: str | None = None, **kwargs) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}{path}", json=body, headers={"Authorization": f"Bearer {key or proxy.master_key}"}, timeout=60, **kwargs)


def get(proxy, path: str, key: str | None = None, **kwargs) -> httpx.Response:
    return httpx.get(f"{proxy.base_url}{path}", headers={"Authorization": f"Bearer {key or proxy.master_key}", **kwargs.pop("headers", {})},
                     timeout=60, **kwargs)


def wait_status(proxy, run_id: str, wanted: set[str], timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = get(proxy, f"/agent/runs/{run_id}").json()
        if body.get("status") in wanted:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def sse_events(text: str) -> list[tuple[int, str, dict]]:
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((int(fields.get("id", 0)), fields["event"], json.loads(fields["data"])))
    return found


def notes(effects: Path) -> list[str]:
    return [json.loads(line)["note"] for line in effects.read_text().splitlines()] if effects.exists() else []


# ----------------------------------------------------------------------------------- lifecycle

def test_background_run_lifecycle_list_and_events(runs_proxy, upstream):
    upstream.script("runs-bg", Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "c1")]), Reply(text="It is 42."))
    response = post(runs_proxy, "/agent/run", {"input": "6*7?", "model": "fake/runs-bg", "background": True})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.json()["status"] == "queued" and response.headers["location"] == f"/agent/runs/{run_id}"
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    done = wait_status(runs_proxy, run_id, {"completed"})
    assert done["envelope"]["ok"] and done["envelope"]["final_answer"] == "It is 42."
    assert done["envelope"]["metrics"]["trace_id"] == run_id and done["envelope"]["metrics"]["tool_calls"] == 1
    listed = get(runs_proxy, "/agent/runs", params={"status": "completed", "limit": 50}).json()
    assert run_id in [r["run_id"] for r in listed["runs"]]
    everything = sse_events(get(runs_proxy, f"/agent/runs/{run_id}/events").text)
    kinds = [kind for _, kind, _ in everything]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed" and "tool_result" in kinds
    assert [seq for seq, _, _ in everything] == list(range(1, len(everything) + 1))
    middle = everything[2][0]
    resumed = sse_events(get(runs_proxy, f"/agent/runs/{run_id}/events", headers={"Last-Event-ID": str(middle)}).text)
    assert resumed == everything[middle:]


def test_background_stream_survives_a_disconnect_and_reattaches(runs_proxy, upstream):
    upstream.script("runs-reattach", Reply(text="slow answer", latency_s=1.0))
    with httpx.stream("POST", f"{runs_proxy.base_url}/agent/run", headers=runs_proxy.headers, timeout=30,
                      json={"input": "x", "model": "fake/runs-reattach", "background": True, "stream": True}) as response:
        run_id = response.headers["x-proxy-ext-run-id"]
        first = next(response.iter_lines())  # then hang up mid-run
    assert first.startswith("id: 1")
    done = wait_status(runs_proxy, run_id, {"completed"})
    assert done["envelope"]["final_answer"] == "slow answer"
    assert sse_events(get(runs_proxy, f"/agent/runs/{run_id}/events", headers={"Last-Event-ID": "1"}).text)[-1][1] == "run_completed"


def test_cancel_a_running_background_run(runs_proxy, upstream):
    upstream.script("runs-cancel", Reply(text="too late", latency_s=10))
    run_id = post(runs_proxy, "/agent/run", {"input": "x", "model": "fake/runs-cancel", "background": True}).json()["run_id"]
    wait_status(runs_proxy, run_id, {"running"})
    assert post(runs_proxy, f"/agent/runs/{run_id}/cancel").status_code == 200
    cancelled = wait_status(runs_proxy, run_id, {"cancelled"}, timeout_s=10)
    assert cancelled["envelope"]["stopped_reason"] == "cancelled"


@pytest.mark.parametrize("body", [{"model": "x" * 100_000}, {"model": "fake-nope/never"}, {"tools": ["no_such_tool"]},
                                  {"tools": ["t" * 100_000]}, {"backend": "http"}, {"profile": "p" * 100_000}],
                         ids=["100k-model", "unknown-model", "unknown-tool", "100k-tool", "http-backend-unconfigured", "100k-profile"])
def test_a_background_run_is_refused_at_submission_as_the_run_itself_is(runs_proxy, upstream, body):
    """What /agent/run refuses with a 400 before it runs, a background submission refuses too (it
    answered 202 and the run failed later), with the same short message naming what to fix."""
    body = {"input": "x", **body}
    before = len(get(runs_proxy, "/agent/runs", params={"limit": 500}).json()["runs"])
    foreground = post(runs_proxy, "/agent/run", body)
    for background in (post(runs_proxy, "/agent/run", {**body, "background": True}),
                       post(runs_proxy, "/agent/run", {**body, "background": True, "stream": True})):
        assert (foreground.status_code, background.status_code) == (400, 400), background.text[:300]
        message = background.json()["error"]["message"]
        assert message == foreground.json()["error"]["message"] and len(message) < 500, message[:600]
    assert len(get(runs_proxy, "/agent/runs", params={"limit": 500}).json()["runs"]) == before  # nothing was queued


def test_a_key_without_access_to_the_model_is_refused_at_submission(runs_proxy, upstream):
    """LiteLLM's auth refuses the run's first model call at submission (it answered 202 and the
    run failed at its first turn); a model the key may use is still queued."""
    before = len(get(runs_proxy, "/agent/runs", params={"limit": 500}).json()["runs"])
    refused = post(runs_proxy, "/agent/run", {"input": "x", "model": "fake/runs-default", "background": True}, key="sk-test-limited")
    assert refused.status_code in (401, 403), refused.text[:300]
    assert "fake/runs-default" in refused.json()["error"]["message"], refused.text[:300]
    assert len(get(runs_proxy, "/agent/runs", params={"limit": 500}).json()["runs"]) == before  # nothing was queued
    upstream.script("agent-allowed", Reply(text="allowed"))
    allowed = post(runs_proxy, "/agent/run", {"input": "x", "model": "fake/agent-allowed", "background": True}, key="sk-test-limited")
    assert allowed.status_code == 202, allowed.text[:300]
    assert wait_status(runs_proxy, allowed.json()["run_id"], {"completed", "failed"})["status"] == "completed"


# ----------------------------------------------------------------------------------- approvals

def _approval_run(proxy, upstream, model: str, note: str) -> dict:
    upstream.script(model, Reply(tool_calls=[call("record_note", {"note": note}, f"call-{note}")]),
                    Reply(text=f"done with {note}"))
    response = post(proxy, "/agent/run", {"input": "note it", "profile": "careful", "model": f"fake/{model}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_tool_needing_approval_runs_only_after_it_is_approved(runs_proxy, upstream, effects):
    body = _approval_run(runs_proxy, upstream, "runs-approve", "approved-1")
    assert body["stopped_reason"] == "awaiting_approval" and body["ok"] is False
    run_id = body["metrics"]["trace_id"]
    assert [c["id"] for c in body["metrics"]["pending_approvals"]] == ["call-approved-1"]
    assert "approved-1" not in notes(effects)
    status = get(runs_proxy, f"/agent/runs/{run_id}").json()
    assert status["status"] == "awaiting_approval" and status["pending_approvals"][0]["function"]["name"] == "record_note"
    decided = post(runs_proxy, f"/agent/runs/{run_id}/approvals", {"decisions": [{"call_id": "call-approved-1", "approve": True}]})
    assert decided.status_code == 200, decided.text
    done = wait_status(runs_proxy, run_id, {"completed"})
    assert done["envelope"]["final_answer"] == "done with approved-1"
    assert notes(effects).count("approved-1") == 1


def test_a_denied_call_never_runs_and_the_model_sees_the_reason(runs_proxy, upstream, effects):
    run_id = _approval_run(runs_proxy, upstream, "runs-deny", "denied-1")["metrics"]["trace_id"]
    post(runs_proxy, f"/agent/runs/{run_id}/approvals",
         {"decisions": [{"call_id": "call-denied-1", "approve": False, "reason": "not on a Friday"}]})
    wait_status(runs_proxy, run_id, {"completed"})
    assert "denied-1" not in notes(effects)
    tool_message = [m for m in upstream.requests_for("runs-deny")[-1]["body"]["messages"] if m["role"] == "tool"][-1]
    assert "not on a Friday" in tool_message["content"]


def test_a_pending_approval_expires(runs_proxy, upstream, effects):
    run_id = _approval_run(runs_proxy, upstream, "runs-expire", "expired-1")["metrics"]["trace_id"]
    expired = wait_status(runs_proxy, run_id, {"failed"}, timeout_s=20)
    assert expired["envelope"]["stopped_reason"] == "approval_expired"
    assert post(runs_proxy, f"/agent/runs/{run_id}/approvals", {"decisions": [{"call_id": "call-expired-1", "approve": True}]}).status_code == 409
    assert "expired-1" not in notes(effects)


@pytest.mark.parametrize("body, status", [({"decisions": []}, 422), ({"decisions": [{"call_id": "nope", "approve": True}]}, 400),
                                          ({"decisions": [{"call_id": "x", "approve": "yes"}]}, 422), ({"other": 1}, 422),
                                          ({"decisions": [{"call_id": "x", "approve": True}, {"call_id": "x", "approve": False}]}, 422)])
def test_bad_approvals_get_a_clear_4xx(runs_proxy, upstream, body, status):
    run_id = _approval_run(runs_proxy, upstream, f"runs-bad-{status}-{len(str(body))}", "bad")["metrics"]["trace_id"]
    response = post(runs_proxy, f"/agent/runs/{run_id}/approvals", body)
    assert response.status_code == status and response.json()["error"]["message"]


def test_event_numbers_and_page_sizes_that_are_no_numbers_get_a_4xx(runs_proxy, upstream):
    upstream.script("runs-digits", Reply(text="ok"))
    run_id = post(runs_proxy, "/agent/run", {"input": "x", "model": "fake/runs-digits", "background": True}).json()["run_id"]
    wait_status(runs_proxy, run_id, {"completed"})
    for junk in ("\u00b2", "\u0663", "-1", "1e3", " 1", "9" * 5000):  # "²" and Arabic-Indic 3 pass str.isdigit(), not int();
        # Python refuses int() of over 4,300 digits
        assert get(runs_proxy, f"/agent/runs/{run_id}/events", params={"after": junk}).status_code == 400, junk
        assert get(runs_proxy, "/agent/runs", params={"limit": junk}).status_code == 422, junk
    assert get(runs_proxy, f"/agent/runs/{run_id}/events", headers={"Last-Event-ID": b"\xb2"}).status_code == 400
    for cursor in ("nan:x", "inf:x", "junk", "1e999:" + "a" * 32):  # not a next_before: a 400, never a 500
        listed = get(runs_proxy, "/agent/runs", params={"before": cursor})
        assert listed.status_code == 400 and "next_before" in listed.json()["error"]["message"], (cursor, listed.text)


# ----------------------------------------------------------------------------------- ownership

def test_another_key_gets_404_on_every_run_route(runs_proxy, upstream):
    upstream.script("runs-owned", Reply(text="mine"))
    run_id = post(runs_proxy, "/agent/run", {"input": "x", "model": "fake/runs-owned", "background": True}).json()["run_id"]
    wait_status(runs_proxy, run_id, {"completed"})
    for response in (get(runs_proxy, f"/agent/runs/{run_id}", key=OTHER_KEY), get(runs_proxy, f"/agent/runs/{run_id}/events", key=OTHER_KEY),
                     post(runs_proxy, f"/agent/runs/{run_id}/cancel", key=OTHER_KEY),
                     post(runs_proxy, f"/agent/runs/{run_id}/approvals", {"decisions": [{"call_id": "a", "approve": True}]}, key=OTHER_KEY)):
        assert response.status_code == 404, response.text
    assert run_id not in [r["run_id"] for r in get(runs_proxy, "/agent/runs", key=OTHER_KEY).json()["runs"]]
    assert get(runs_proxy, "/agent/runs/" + "0" * 32).status_code == 404


# ----------------------------------------------------------------------------------- scale and crashes

def _completed(client: httpx.Client) -> set[str]:
    found: set[str] = set()
    before = None
    while True:
        page = client.get("/agent/runs", params={"status": "completed", "limit": 500, **({"before": before} if before else {})}).json()
        found |= {r["run_id"] for r in page["runs"]}
        before = page["next_before"]
        if before is None:
            return found


def test_a_thousand_queued_runs_all_complete_within_the_slot_limit(runs_proxy):
    with httpx.Client(base_url=runs_proxy.base_url, headers=runs_proxy.headers, timeout=60) as client:
        started = time.monotonic()
        ids = {client.post("/agent/run", json={"input": f"n{i}", "backend": "echo", "background": True}).json()["run_id"] for i in range(1000)}
        assert len(ids) == 1000
        peak, deadline = 0, time.monotonic() + 180
        while time.monotonic() < deadline:
            text = client.get("/metrics").text
            peak = max(peak, int(float(re.search(r"^proxy_ext_agent_runs_in_progress (\S+)$", text, re.M).group(1))))
            missing = ids - _completed(client)
            if not missing:
                break
            time.sleep(0.5)
        print(f"1000 background runs queued and completed in {time.monotonic() - started:.1f} s")
    assert not missing, f"{len(missing)} runs never completed"
    assert peak <= 4


def test_a_killed_instance_s_run_completes_on_another_without_repeats(upstream, effects, tmp_path):
    config, env = _config(upstream, effects, tmp_path)
    turns = {"n": 0}

    def script(body: dict) -> Reply:
        done = sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
        if done >= 4:
            return Reply(text="five turns done")
        return Reply(tool_calls=[call("record_note", {"note": f"crash-{done}", "seconds": 4 if done == 1 else 0}, f"crash-call-{done}")])

    upstream.respond("runs-crash", script)
    first, second = ProxyProcess(config, env=env), ProxyProcess(config, env=env)
    second.master_key = second.env["LITELLM_MASTER_KEY"] = first.master_key  # instances of one deployment share their key
    with first:
        run_id = post(first, "/agent/run", {"input": "five turns", "model": "fake/runs-crash", "background": True}).json()["run_id"]
        with httpx.stream("GET", f"{first.base_url}/agent/runs/{run_id}/events", headers=first.headers, timeout=30) as events:
            for line in events.iter_lines():  # until the slow tool call (turn 2's) has started
                if line.startswith("data:") and '"id":"crash-call-1"' in line:
                    break
        time.sleep(0.3)
        os.killpg(first.process.pid, signal.SIGKILL)  # mid tool call, after turn 2
    with second:
        done = wait_status(second, run_id, {"completed"}, timeout_s=60)
    assert done["envelope"]["final_answer"] == "five turns done"
    assert len(upstream.requests_for("runs-crash")) == 5  # exactly five model turns billed
    recorded = [n for n in notes(effects) if n.startswith("crash-")]
    assert len(recorded) == len(set(recorded)) and "crash-1" not in recorded  # the interrupted call was not run again
    tool_messages = [m["content"] for m in done["envelope"]["messages"] if m["role"] == "tool"]
    assert "stopped before it finished" in tool_messages[1]


def _metric(proxy, name: str) -> float:
    text = get(proxy, "/metrics").text
    return float(re.search(rf"^proxy_ext_{name} (\S+)$", text, re.M).group(1))


def test_abandoned_run_streams_leak_nothing(runs_proxy, upstream):
    """Clients that hang up on background streams and on /events mid-run: every run still completes,
    and no slot, task or file descriptor is left behind."""
    upstream.script("runs-abandon", *[Reply(text="abandoned but done", latency_s=0.3)] * 30)
    fds = lambda: len(os.listdir(f"/proc/{runs_proxy.process.pid}/fd"))  # noqa: E731
    before = fds()
    ids = []
    for i in range(30):
        with httpx.stream("POST", f"{runs_proxy.base_url}/agent/run", headers=runs_proxy.headers, timeout=30,
                          json={"input": f"a{i}", "model": "fake/runs-abandon", "background": True, "stream": True}) as response:
            ids.append(response.headers["x-proxy-ext-run-id"])
            next(response.iter_lines())
        if i % 3 == 0:
            with httpx.stream("GET", f"{runs_proxy.base_url}/agent/runs/{ids[-1]}/events", headers=runs_proxy.headers, timeout=30) as events:
                next(events.iter_lines())
    for run_id in ids:
        assert wait_status(runs_proxy, run_id, {"completed"})["envelope"]["final_answer"] == "abandoned but done"
    deadline = time.monotonic() + 10
    while (_metric(runs_proxy, "agent_runs_in_progress"), _metric(runs_proxy, "agent_tasks")) != (0, 0) or fds() > before + 5:
        assert time.monotonic() < deadline, (_metric(runs_proxy, "agent_runs_in_progress"), _metric(runs_proxy, "agent_tasks"), before, fds())
        time.sleep(0.2)
