"""Clients that hang up at random moments against a running proxy (not a test module).

    .venv/bin/python -m tests.support.hostile_clients /tmp/hostile/stack.json [N] [--redis-chaos stop|kill]

Reads the stack file :mod:`tests.support.hostile_stack` writes. Takes a baseline (the proxy's
``/metrics`` gauges; fds, threads, descendants and RSS of its process tree from ``/proc``; Redis
keys and lease counts), runs ``N`` clients (default 300, 24 at a time) that each start one kind of
request and hang up after a random delay, waits for the grace times, and prints what is not back
to the baseline. ``--redis-chaos`` SIGSTOPs (or kills and restarts) the Redis mid-loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx

RUN_KINDS = [
    ("/agent/run", {"input": "py 1.5", "stream": True}),
    ("/agent/run", {"input": "py 1.5"}),
    ("/agent/run", {"input": "sh 1.5", "stream": True}),
    ("/agent/run", {"input": "host 1.5", "backend": "http", "stream": True}),
    ("/agent/run", {"input": "mcp", "stream": True}),
    ("/agent/run", {"input": "hello", "stream": True}),
    ("/agent/run", {"input": "py 1", "background": True, "stream": True}),
    ("/agent/run", {"input": "note", "profile": "careful", "background": True, "stream": True}),
    ("/agent/run", {"input": "py 1", "profile": "careful", "background": True, "stream": True}),
    ("/v1/chat/completions", {"model": "mini-agent/mini", "messages": [{"role": "user", "content": "py 1.5"}], "stream": True}),
    ("/v1/chat/completions", {"model": "mini-agent/mini", "messages": [{"role": "user", "content": "py 1.5"}]}),
    ("/v1/chat/completions", {"model": "codex-slow-stream", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
    ("/v1/chat/completions", {"model": "codex-hang", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "codex-ok", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
]


def tree(root: int) -> list[int]:
    """``root`` and every descendant (by ppid in /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def proc_stats(root: int) -> dict[str, Any]:
    pids = tree(root)
    fds = threads = rss = 0
    names = []
    for pid in pids:
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            status = open(f"/proc/{pid}/status").read()
            threads += int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
            names.append(open(f"/proc/{pid}/cmdline").read().replace("\0", " ")[:80])
        except (OSError, AttributeError):
            continue
    return {"procs": len(pids), "fds": fds, "threads": threads, "rss_mb": rss // 1024, "cmdlines": sorted(names)}


def gauges(stack: dict[str, Any]) -> dict[str, float]:
    text = httpx.get(stack["base_url"] + "/metrics", headers={"Authorization": f"Bearer {stack['master_key']}"}, timeout=20).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(proxy_ext_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)
            if not re.search(r"_(total|bucket|sum|count|created)\b", m.group(1))}


def redis_cmd(stack: dict[str, Any], *args: str) -> str:
    port = stack["redis_url"].rsplit(":", 1)[1].split("/")[0]
    return subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True, timeout=10).stdout.strip()


def redis_stats(stack: dict[str, Any]) -> dict[str, Any]:
    keys = redis_cmd(stack, "--scan").split()
    zsets = {k: redis_cmd(stack, "ZCARD", k) for k in keys if redis_cmd(stack, "TYPE", k) == "zset" and "lease" in k}
    return {"keys": len(keys), "lease_sets": zsets}


def run_counts(stack: dict[str, Any]) -> dict[str, int]:
    """Stored runs that are ``queued`` or ``running`` (awaiting approval is a run at rest)."""
    headers = {"Authorization": f"Bearer {stack['master_key']}"}
    out = {}
    for status in ("queued", "running"):
        response = httpx.get(stack["base_url"] + f"/agent/runs?status={status}&limit=500", headers=headers, timeout=20)
        out[status] = len(response.json().get("runs", [])) if response.status_code == 200 else response.status_code
    return out


def snapshot(stack: dict[str, Any]) -> dict[str, Any]:
    return {"gauges": gauges(stack), "proc": proc_stats(stack["pid"]), "redis": redis_stats(stack), "runs": run_counts(stack)}


def warm_up(stack: dict[str, Any]) -> None:
    """One call of each kind first: the exec fork server and its supervisors are a pool, not a leak."""
    headers = {"Authorization": f"Bearer {stack['master_key']}"}
    for path, body in RUN_KINDS:
        if not body.get("background") and "codex-hang" not in json.dumps(body) and "slow-stream" not in json.dumps(body):
            httpx.post(stack["base_url"] + path, json={**body, "stream": False}, headers=headers, timeout=60)


async def one(client: httpx.AsyncClient, stack: dict[str, Any], rng: random.Random, tally: dict[str, int]) -> None:
    path, body = rng.choice(RUN_KINDS)
    delay = rng.choice([0.0, 0.01, 0.05, 0.2, 0.5, 1.0, 1.6, 2.5])
    key = f"{path} {json.dumps(body)[:50]}"
    if delay == 0.0 and rng.random() < 0.5:  # hang up before the body is complete
        raw = json.dumps(body).encode()
        host, port = stack["base_url"].split("//")[1].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {stack['master_key']}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw[: len(raw) // 2])
        tally["cut-body"] = tally.get("cut-body", 0) + 1
        return
    headers = {"Authorization": f"Bearer {stack['master_key']}"}

    async def go() -> None:
        async with client.stream("POST", path, json=body, headers=headers) as response:
            run_id = response.headers.get("x-proxy-ext-run-id")
            async for _ in response.aiter_raw():
                if run_id and body.get("background") and rng.random() < 0.3:
                    # hang up this stream, then follow the run on its events stream, and hang up that too
                    break
            if run_id and body.get("background"):
                async with client.stream("GET", f"/agent/runs/{run_id}/events", headers=headers) as events:
                    async for _ in events.aiter_raw():
                        pass
        tally["completed"] = tally.get("completed", 0) + 1

    try:
        await asyncio.wait_for(go(), timeout=delay or 0.001)
    except (asyncio.TimeoutError, TimeoutError):
        tally["hung-up"] = tally.get("hung-up", 0) + 1
    except httpx.HTTPError as exc:
        tally[f"error {type(exc).__name__}"] = tally.get(f"error {type(exc).__name__}", 0) + 1
    tally[key] = tally.get(key, 0) + 1


async def loop(stack: dict[str, Any], n: int, chaos: str | None) -> dict[str, int]:
    rng = random.Random(int(os.environ.get("HOSTILE_SEED", "7")))
    tally: dict[str, int] = {}
    sem = asyncio.Semaphore(24)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)

    async with httpx.AsyncClient(base_url=stack["base_url"], timeout=30, limits=limits) as client:
        async def guarded(i: int) -> None:
            async with sem:
                if chaos and i == n // 3:
                    os.kill(stack["redis_pid"], signal.SIGSTOP if chaos == "stop" else signal.SIGKILL)
                    print(f"redis {chaos}ped at client {i}", flush=True)
                if chaos == "stop" and i == 2 * n // 3:
                    os.kill(stack["redis_pid"], signal.SIGCONT)
                    print(f"redis continued at client {i}", flush=True)
                await one(client, stack, rng, tally)

        await asyncio.gather(*(guarded(i) for i in range(n)))
    return tally


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for name, value in after["gauges"].items():
        if "gc_frozen" not in name and value != before["gauges"].get(name, 0.0):
            out.append(f"gauge {name}: {before['gauges'].get(name)} -> {value}")
    for field in ("procs", "fds", "threads"):
        if after["proc"][field] != before["proc"][field]:
            out.append(f"{field}: {before['proc'][field]} -> {after['proc'][field]}")
    extra = sorted(set(after["proc"]["cmdlines"]) - set(before["proc"]["cmdlines"]))
    if extra:
        out.append(f"new processes: {extra[:10]}")
    if after["runs"] != before["runs"]:
        out.append(f"stored runs: {before['runs']} -> {after['runs']}")
    if after["redis"]["lease_sets"] != before["redis"]["lease_sets"]:
        out.append(f"leases: {before['redis']['lease_sets']} -> {after['redis']['lease_sets']}")
    return out


def main() -> None:
    stack = json.load(open(sys.argv[1]))
    n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 300
    chaos = sys.argv[sys.argv.index("--redis-chaos") + 1] if "--redis-chaos" in sys.argv else None
    if "--no-warm-up" not in sys.argv:
        warm_up(stack)
        time.sleep(float(os.environ.get("HOSTILE_SETTLE_S", "65")))  # extra supervisors retire after 60 s idle
    before = snapshot(stack)
    print("baseline", json.dumps({k: v for k, v in before.items()}, default=str)[:1500], flush=True)
    started = time.monotonic()
    tally = asyncio.run(loop(stack, n, chaos))
    print(f"{n} clients in {time.monotonic() - started:.0f} s:", json.dumps(tally, indent=1), flush=True)
    grace = float(os.environ.get("HOSTILE_GRACE_S", "75"))
    deadline = time.monotonic() + grace
    while True:
        time.sleep(2)
        after = snapshot(stack)
        problems = diff(before, after)
        if not problems or time.monotonic() > deadline:
            break
    print("after", json.dumps(after, default=str)[:1500])
    print("NOT BACK TO BASELINE:" if problems else "back to baseline", *problems, sep="\n  ")


if __name__ == "__main__":
    main()
