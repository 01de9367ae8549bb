"""The multi-worker tier: one proxy with ``--num_workers 2``, as operators scale it.

Agent runs (JSON and SSE, with tool calls), chat completions with ``usage.cost``, and the run limits
go through both workers; ``/metrics`` must add the workers up on every scrape, the instance run limit
and the per-key limit must hold across workers, concurrent runs in both workers give exactly one
valid trace line each, and a worker killed with ``kill -9`` mid-run must give its slots back (and its
gauges must leave the scrape). The agent's model calls go over loopback HTTP here
(``model_transport: http``), so that transport is exercised through the real proxy too; traces are
switched on the fork's way, through the environment.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import glob
import json
import os
import re
import signal
import time

import httpx
import pytest

from tests.codex_fake import install_fake_codex
from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call, fake_model_entry

LIMIT = 3
PER_KEY = 2
WORKER_ARGS = ["--num_workers", "2", "--timeout_worker_healthcheck", "120"]


def _responder(body: dict) -> Reply:
    """A tool call first, then the answer (each model call of a run is a separate request)."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return Reply(text="done")
    return Reply(tool_calls=[call("exec_python", {"code": "print(6 * 7)"})])


@pytest.fixture(scope="module")
def workers(upstream, tmp_path_factory):
    state = tmp_path_factory.mktemp("scale-state")
    traces = state / "runs.jsonl"
    upstream.respond("scale-tools", _responder)
    upstream.script("scale-chat", Reply(text="hi", prompt_tokens=10, completion_tokens=5))
    config = base_config(upstream, {
        "agent": {"default_model": "fake/scale-tools", "limits": {"max_concurrent_runs": LIMIT}, "model_transport": "http"},
        "scale": {"max_concurrent_runs_per_key": PER_KEY, "state_dir": str(state)},
        "tools": {"exec": {"enabled": True}},
        "providers": {"codex_agent": {"enabled": True, "cli": {"binary": str(install_fake_codex(state)), "timeout_s": 60,
                                                              "extra_env": {"FAKE_CODEX_DIR": str(state)}}}},
    }, models=[fake_model_entry("priced/scale-chat", upstream.base_url, "scale-chat", input_cost_per_token=1e-6, output_cost_per_token=2e-6),
               {"model_name": "scale-codex-slow", "litellm_params": {"model": "codex-agent/slow-stream", "codex_agent": {"mode": "cli"}}},
               {"model_name": "scale-codex-hang", "litellm_params": {"model": "codex-agent/hang", "codex_agent": {
                   "mode": "cli", "cli": {"timeout_s": 1, "kill_grace_s": 0.2}}}}])
    config["general_settings"]["custom_auth"] = "tests.support.scale_auth.user_api_key_auth"
    env = {"PYTHONPATH": str(REPO_ROOT), "MINI_AGENT_STORE_TRACES": "1", "MINI_AGENT_STORE_PATH": str(traces)}
    with ProxyProcess(config, env=env, args=WORKER_ARGS, startup_timeout_s=150) as proxy:
        proxy.state_dir, proxy.traces = state, traces
        _until_both_workers_served(proxy)
        yield proxy


def _run(proxy, body: dict, key: str | None = None, timeout: float = 60) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or proxy.master_key}"}
    return httpx.post(f"{proxy.base_url}/agent/run", json=body, headers=headers, timeout=timeout)


def _worker_pids(proxy) -> set[int]:
    lines = proxy.traces.read_bytes().splitlines() if proxy.traces.exists() else []
    return {json.loads(line)["worker_pid"] for line in lines}


def _until_both_workers_served(proxy) -> None:
    # /health/liveliness answers as soon as one worker is up.
    deadline = time.monotonic() + 120
    while len(_worker_pids(proxy)) < 2:
        assert time.monotonic() < deadline, "the second worker never served a run"
        with concurrent.futures.ThreadPoolExecutor(LIMIT) as pool:
            list(pool.map(lambda i: _run(proxy, {"input": "warm", "backend": "echo"}, key=f"sk-scale-warm{i}"), range(LIMIT)))


def _scrape(proxy) -> str:
    # A new connection each time: the kernel hands it to either worker.
    with httpx.Client(headers=proxy.headers, timeout=10) as client:
        response = client.get(f"{proxy.base_url}/metrics")
    assert response.status_code == 200
    return response.text


def _total(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_metrics_add_up_across_workers(workers, upstream):
    before = _scrape(workers)
    assert _total(before, "proxy_ext_gc_frozen_objects") > 100_000  # livemin: every live worker froze its start-up heap
    assert _total(before, "proxy_ext_gc_full_collection_seconds_count") >= 2  # each worker's freeze, timed and added up
    runs_before, tools_before = _total(before, "proxy_ext_agent_runs_total"), _total(before, "proxy_ext_tool_calls_total")
    turns_before = _total(before, "proxy_ext_agent_model_turn_duration_seconds_count")
    client = workers.openai()

    def one(i: int) -> None:
        key = f"sk-scale-m{i % 6}"
        if i % 3 == 0:  # SSE
            with httpx.stream("POST", f"{workers.base_url}/agent/run", json={"input": "sum", "stream": True},
                              headers={"Authorization": f"Bearer {key}"}, timeout=60) as response:
                assert response.status_code in (200, 429), response.read()
                if response.status_code == 429:  # three runs at a time: come back
                    time.sleep(0.05)
                    return one(i)
                assert b"run_completed" in response.read()
        else:
            response = _run(workers, {"input": "sum"}, key=key)
            if response.status_code == 429:
                time.sleep(0.05)
                return one(i)
            assert response.status_code == 200 and response.json()["ok"], response.text
        chat = client.chat.completions.create(model="priced/scale-chat", messages=[{"role": "user", "content": "hi"}])
        assert chat.usage.model_extra["cost"] == pytest.approx(10 * 1e-6 + 5 * 2e-6)  # the cost hooks of either worker

    sent = 24
    with concurrent.futures.ThreadPoolExecutor(LIMIT) as pool:
        list(pool.map(one, range(sent)))
    assert len(_worker_pids(workers)) == 2
    for _ in range(8):  # every scrape, whichever worker serves it, shows the same totals
        text = _scrape(workers)
        assert _total(text, "proxy_ext_agent_runs_total") == runs_before + sent
        assert _total(text, "proxy_ext_tool_calls_total") == tools_before + sent
        assert _total(text, "proxy_ext_agent_run_duration_seconds_count") == runs_before + sent
        assert _total(text, "proxy_ext_agent_model_turn_duration_seconds_count") == turns_before + 2 * sent


TRACED_RUNS = 60


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_traces_under_two_workers(workers, upstream):
    """Concurrent runs in both workers append to one trace file: every run gives exactly one line,
    and every line parses (no torn or interleaved writes of large records)."""
    upstream.script("scale-traced", Reply(text="x" * 20_000, latency_s=0.05))  # large records: a torn write would show

    def one(i: int) -> dict:
        response = _run(workers, {"input": f"run {i}", "model": "fake/scale-traced"}, key=f"sk-scale-t{i}")
        if response.status_code == 429:  # three runs at a time: come back
            time.sleep(0.05)
            return one(i)
        assert response.status_code == 200 and response.json()["ok"], response.text
        return response.json()

    with concurrent.futures.ThreadPoolExecutor(LIMIT) as pool:
        bodies = list(pool.map(one, range(TRACED_RUNS)))
    assert workers.traces.read_bytes().endswith(b"\n")
    records = _records(workers.traces)  # every line parses
    ids = [r["trace_id"] for r in records]
    assert all(ids.count(b["metrics"]["trace_id"]) == 1 for b in bodies)
    traced = {r["trace_id"]: r for r in records}
    assert len({traced[b["metrics"]["trace_id"]]["worker_pid"] for b in bodies}) == 2


def _slow_burst(proxy, keys: list[str], latency_s: float) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(keys)) as pool:
        return list(pool.map(lambda k: _run(proxy, {"input": "slow", "model": f"fake/scale-slow-{latency_s}"}, key=k), keys))


def test_instance_limit_holds_across_workers(workers, upstream):
    upstream.script("scale-slow-3", *[Reply(text="late", latency_s=3)] * 12)
    responses = _slow_burst(workers, [f"sk-scale-i{i}" for i in range(8)], 3)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * LIMIT + [429] * (8 - LIMIT), [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 429)
    assert "max_concurrent_runs" in refused.json()["error"]["message"]


def test_per_key_limit_holds_across_workers(workers, upstream):
    upstream.script("scale-slow-2", *[Reply(text="late", latency_s=2)] * 6)
    responses = _slow_burst(workers, ["sk-scale-same"] * (PER_KEY + 1), 2)
    assert sorted(r.status_code for r in responses) == [200] * PER_KEY + [429]
    refused = next(r for r in responses if r.status_code == 429)
    assert "max_concurrent_runs_per_key" in refused.json()["error"]["message"]


def _children(pid: int) -> dict[int, str]:
    """The children of ``pid`` and their states (``Z`` is a zombie)."""
    found = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.split("/")[2])] = fields[0]
    return found


def test_codex_calls_whose_clients_hang_up_leave_no_zombies(workers):
    # LiteLLM's worker supervisor is a child subreaper that reaps only Prisma's engines: a codex
    # grandchild orphaned by the kill used to end up there as a <defunct> process for good.
    pid_file, starts = workers.state_dir / "slow-stream.pids", workers.state_dir / "slow-stream.starts"
    starts.unlink(missing_ok=True)
    body = {"model": "scale-codex-slow", "messages": [{"role": "user", "content": "go"}], "stream": True}
    spawned, orphaned = [], 0
    for _ in range(4):
        pid_file.unlink(missing_ok=True)
        with httpx.stream("POST", f"{workers.base_url}/v1/chat/completions", json=body, headers=workers.headers, timeout=30) as response:
            assert response.status_code == 200
            next(line for line in response.iter_lines() if "first words" in line)
            deadline = time.monotonic() + 5
            while len(pids := pid_file.read_text().split() if pid_file.exists() else []) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)  # the fake starts its child (on a loaded box it may not have yet)
            spawned += [int(p) for p in pids]
            orphaned += len(pids) == 2
    assert orphaned, "no fake codex got as far as starting its child"
    time.sleep(1)  # room for a retry LiteLLM might start after the hang-up
    # One codex per request: the killed run is a 499 for LiteLLM, which neither retries it nor
    # starts codex again for a client that has left.
    assert len(starts.read_text().split()) == 4, (starts.read_text(), spawned)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in spawned) or "Z" in _children(workers.process.pid).values():
        assert time.monotonic() < deadline, {"codex": [p for p in spawned if os.path.exists(f"/proc/{p}")], "supervisor": _children(workers.process.pid)}
        time.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
def test_a_codex_run_that_timed_out_is_not_started_again_by_the_routers_retries(workers, stream):
    # This proxy keeps LiteLLM's default retries. A codex run that used all its time may have
    # changed files in its workspace and would most likely time out again: one start, one 408.
    starts = workers.state_dir / "hang.starts"
    starts.unlink(missing_ok=True)
    body = {"model": "scale-codex-hang", "messages": [{"role": "user", "content": "go"}], "stream": stream}
    response = httpx.post(f"{workers.base_url}/v1/chat/completions", json=body, headers=workers.headers, timeout=60)
    assert response.status_code == 408 or stream and "did not finish within 1s" in response.text, response.text[:300]
    assert len(starts.read_text().split()) == 1, starts.read_text()


def _slots(proxy) -> dict:
    files = glob.glob(str(proxy.state_dir / "proxy_ext-instance-*" / "run_slots.json"))
    assert len(files) == 1, files
    with open(files[0], "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)  # as the workers read it: a write is pwrite, then ftruncate
        raw = handle.read()
    return json.loads(raw) if raw else {}


def test_a_worker_killed_mid_run_gives_its_slots_back(workers, upstream):
    upstream.script("scale-slow-8", *[Reply(text="late", latency_s=8)] * LIMIT)
    pool = concurrent.futures.ThreadPoolExecutor(LIMIT)
    pending = [pool.submit(_run, workers, {"input": "slow", "model": "fake/scale-slow-8"}, f"sk-scale-k{i}") for i in range(LIMIT)]
    deadline = time.monotonic() + 20
    while sum(sum(e["runs"].values()) for e in _slots(workers).values()) < LIMIT:
        assert time.monotonic() < deadline, _slots(workers)
        time.sleep(0.1)
    victim = int(next(iter(_slots(workers))))
    os.kill(victim, signal.SIGKILL)
    for future in pending:  # the victim's runs end with the connection; the others finish
        try:
            future.result(timeout=60)
        except httpx.HTTPError:
            pass
    pool.shutdown()
    assert str(victim) in _slots(workers)  # nobody has given the dead worker's slots back yet
    upstream.script("scale-slow-3", *[Reply(text="late", latency_s=3)] * LIMIT * 8)
    deadline = time.monotonic() + 60
    while True:  # the surviving worker (or the replacement) reclaims them once a full burst needs them
        # 3 s answers: the burst's runs overlap even when a loaded box starts them a second apart
        responses = _slow_burst(workers, [f"sk-scale-r{i}" for i in range(LIMIT)], 3)
        codes = [r.status_code for r in responses]
        if codes == [200] * LIMIT and str(victim) not in _slots(workers):
            break
        assert time.monotonic() < deadline and set(codes) <= {200, 429}, [r.text for r in responses]
    assert str(victim) not in _slots(workers)
    deadline = time.monotonic() + 10
    while _total(_scrape(workers), "proxy_ext_agent_runs_in_progress") != 0:  # the dead worker's gauge is gone
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _total(_scrape(workers), "proxy_ext_agent_runs_in_progress") == 0
