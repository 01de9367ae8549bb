"""Traces with ``--num_workers 2``: concurrent runs in two workers give exactly one valid line each."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx

from tests.conftest import base_config
from tests.harness import ProxyProcess, Reply

RUNS = 60


def test_traces_under_two_workers(upstream, tmp_path):
    trace_file = tmp_path / "runs.jsonl"
    # Loopback HTTP transport here, so both transports are exercised through the real proxy.
    config = base_config(upstream, {"agent": {"default_model": "fake/workers", "model_transport": "http"}})
    # Traces switched on the seed's way, through the environment.
    env = {"MINI_AGENT_STORE_TRACES": "1", "MINI_AGENT_STORE_PATH": str(trace_file)}
    upstream.script("workers", Reply(text="x" * 20_000, latency_s=0.05))  # large records: a torn write would show
    with ProxyProcess(config, env=env, args=["--num_workers", "2", "--timeout_worker_healthcheck", "120"], startup_timeout_s=150) as proxy:
        def one(i: int, backend: str = "local") -> dict:
            body = {"input": f"run {i}", "backend": backend}
            response = httpx.post(f"{proxy.base_url}/agent/run", json=body, headers=proxy.headers, timeout=60)
            assert response.status_code == 200, response.text
            return response.json()

        # /health/liveliness answers as soon as one worker is up: warm up until both have served a run.
        deadline = time.monotonic() + 90
        while len(_pids(trace_file)) < 2:
            assert time.monotonic() < deadline, "the second worker never served a run"
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: one(i, "echo"), range(8)))
        warmup = len(_records(trace_file))
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            bodies = list(pool.map(one, range(RUNS)))
    assert all(body["ok"] for body in bodies)
    assert trace_file.read_bytes().endswith(b"\n")
    records = _records(trace_file)  # every line parses: no torn or interleaved writes
    assert len(records) == warmup + RUNS
    run_records = records[warmup:]
    assert sorted(r["trace_id"] for r in run_records) == sorted(b["metrics"]["trace_id"] for b in bodies)
    assert len({r["worker_pid"] for r in records}) == 2


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _pids(path) -> set[int]:
    return {r["worker_pid"] for r in _records(path)}
