"""Durable runs on one Redis (a real redis-server): a proxy with two workers and a second instance
serve the same runs — created on one, streamed, approved and cancelled on the other."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call
from tests.test_runs import notes, sse_events


@pytest.fixture(scope="module")
def effects(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("redis-effects") / "effects.jsonl"


@pytest.fixture(scope="module")
def pair(upstream, redis_url, effects):
    """(a proxy with two workers, a second single-worker instance), one Redis, one master key."""
    config = base_config(upstream, {
        "agent": {"default_model": "fake/redis-default", "local_tools": ["tests.support.side_effects.record_note"],
                  "limits": {"max_concurrent_runs": 2},
                  "profiles": {"careful": {"requires_approval": ["record_*"]}}},
        "runs": {"store": "redis", "redis_url": redis_url, "lease_s": 3, "poll_interval_s": 0.05},
    })
    env = {"PYTHONPATH": str(REPO_ROOT), "SIDE_EFFECTS_PATH": str(effects)}
    first = ProxyProcess(config, env=env, args=["--num_workers", "2", "--timeout_worker_healthcheck", "120"], startup_timeout_s=150)
    second = ProxyProcess(config, env=env)
    second.master_key = second.env["LITELLM_MASTER_KEY"] = first.master_key
    with first, second:
        yield first, second


def wait_status(proxy, run_id: str, wanted: set[str], timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = httpx.get(f"{proxy.base_url}/agent/runs/{run_id}", headers=proxy.headers, timeout=30).json()
        if body.get("status") in wanted:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_created_on_one_instance_streamed_and_read_on_the_other(pair, upstream):
    first, second = pair
    upstream.script("redis-bg", Reply(tool_calls=[call("calculator", {"expression": "2 + 3"}, "r1")], latency_s=0.5), Reply(text="five"))
    created = httpx.post(f"{first.base_url}/agent/run", headers=first.headers, timeout=30,
                         json={"input": "2+3?", "model": "fake/redis-bg", "background": True})
    assert created.status_code == 202, created.text
    run_id = created.json()["run_id"]
    streamed = httpx.get(f"{second.base_url}/agent/runs/{run_id}/events", headers=second.headers, timeout=30)
    kinds = [kind for _, kind, _ in sse_events(streamed.text)]
    assert kinds[0] == "run_started" and kinds[-1] == "run_completed" and "tool_result" in kinds
    assert wait_status(second, run_id, {"completed"})["envelope"]["final_answer"] == "five"
    listed = httpx.get(f"{second.base_url}/agent/runs", headers=second.headers, params={"status": "completed"}, timeout=30).json()
    assert run_id in [r["run_id"] for r in listed["runs"]]
    assert httpx.get(f"{second.base_url}/ready", timeout=30).json()["checks"]["runs"] == {"ok": True}


def test_paused_on_one_instance_approved_on_the_other(pair, upstream, effects):
    first, second = pair
    upstream.script("redis-approve", Reply(tool_calls=[call("record_note", {"note": "redis-approved"}, "ra1")]), Reply(text="noted"))
    paused = httpx.post(f"{first.base_url}/agent/run", headers=first.headers, timeout=30,
                        json={"input": "note", "profile": "careful", "model": "fake/redis-approve"}).json()
    assert paused["stopped_reason"] == "awaiting_approval" and "redis-approved" not in notes(effects)
    run_id = paused["metrics"]["trace_id"]
    decided = httpx.post(f"{second.base_url}/agent/runs/{run_id}/approvals", headers=second.headers, timeout=30,
                         json={"decisions": [{"call_id": "ra1", "approve": True}]})
    assert decided.status_code == 200, decided.text
    assert wait_status(first, run_id, {"completed"})["envelope"]["final_answer"] == "noted"
    assert notes(effects).count("redis-approved") == 1


def test_cancelled_from_the_other_instance(pair, upstream):
    first, second = pair
    upstream.script("redis-cancel", Reply(text="never", latency_s=20))
    run_id = httpx.post(f"{second.base_url}/agent/run", headers=second.headers, timeout=30,
                        json={"input": "x", "model": "fake/redis-cancel", "background": True}).json()["run_id"]
    wait_status(first, run_id, {"running"})
    assert httpx.post(f"{first.base_url}/agent/runs/{run_id}/cancel", headers=first.headers, timeout=30).status_code == 200
    assert wait_status(second, run_id, {"cancelled"}, timeout_s=15)["envelope"]["stopped_reason"] == "cancelled"


def test_both_workers_and_the_other_instance_share_the_queue(pair, upstream, effects):
    first, second = pair
    upstream.respond("redis-share", lambda body: Reply(text="shared") if any(m.get("role") == "tool" for m in body["messages"])
                     else Reply(tool_calls=[call("record_note", {"note": "share-" + body["messages"][-1]["content"], "seconds": 0.4}, "s1")]))
    with httpx.Client(base_url=first.base_url, headers=first.headers, timeout=30) as client:
        ids = [client.post("/agent/run", json={"input": f"{i}", "model": "fake/redis-share", "background": True}).json()["run_id"]
               for i in range(16)]
    for run_id in ids:
        assert wait_status(second, run_id, {"completed"}, timeout_s=60)["envelope"]["final_answer"] == "shared"
    lines = [json.loads(line) for line in effects.read_text().splitlines() if '"share-' in line]
    assert sorted(line["note"] for line in lines) == sorted(f"share-{i}" for i in range(16))  # each run's tool ran once
    pids = {line["pid"] for line in lines}
    # Both instances took runs from the one queue (the first instance's two workers share its slots,
    # so which of them runs how many is first come, first served).
    assert second.process.pid in pids and pids - {second.process.pid}, pids
