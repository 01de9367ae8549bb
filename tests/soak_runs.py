"""Soak of durable runs on Redis: ``python -m tests.soak_runs [--rounds 3 --runs 150 --workers 2]``.

One proxy (``--num_workers N``) with ``runs.store: redis`` and ``scale.global_max_concurrent_runs``
over a real ``redis-server`` and the fake upstream. Each round starts ``--runs`` clients at once,
each doing one thing at random (seeded): a background run polled to its end; a background stream
dropped after a few lines; a cancel at a random moment; an approval-gated run approved, denied or
cancelled while it waits; an events reader that hangs up; a foreground stream dropped mid-run; a
foreground run that pauses for approval and is approved. After each round, once idle:

- every background run reached a final state (the one its client's action allows);
- no answer was a 5xx; the run-slot gauges of ``/metrics`` are 0; no global-limit lease is left in
  Redis, and no run is ``queued`` / ``running`` / ``awaiting_approval`` there;
- the fds and threads of the proxy's processes (``/proc``) stay flat after the first round;
- the proxy log has no traceback.

Prints one line per round and a summary; exit status 1 when a check failed. ``soak()`` is the same
for a test (``tests/test_soak_runs.py`` runs a short round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from tests.conftest import base_config
from tests.harness import FakeUpstream, ProxyProcess, Reply, call
from tests.harness.proxy import REPO_ROOT
from tests.harness.redis_server import RedisServer

FINAL = {"completed", "failed", "cancelled", "interrupted"}
ACTIONS = ("plain", "stream_drop", "cancel", "approve", "deny", "cancel_waiting", "reader_drop", "fg_stream_drop", "fg_park",
           "submit_drop")
LEASE_PREFIX = "proxy_ext:runs"
FD_SLACK, THREAD_SLACK = 8, 2
"""Growth of a process' fds / threads between the first and the last round still counted as flat
(connection pools settle; the point is a leak per run, which would be hundreds)."""


def _upstream_replies(upstream: FakeUpstream, rng: random.Random) -> None:
    def plain(body: dict[str, Any]) -> Reply:
        return Reply(text="soaked", latency_s=rng.uniform(0.0, 0.3))

    def slow(body: dict[str, Any]) -> Reply:
        return Reply(text="slowly soaked", latency_s=rng.uniform(0.2, 1.5))

    def gated(body: dict[str, Any]) -> Reply:
        if any(m.get("role") == "tool" for m in body.get("messages", [])):
            return Reply(text="after the decision", latency_s=rng.uniform(0.0, 0.2))
        return Reply(tool_calls=[call("calculator", {"expression": "6 * 7"}, "c1")], latency_s=rng.uniform(0.0, 0.2))

    upstream.respond("soak-plain", plain)
    upstream.respond("soak-slow", slow)
    upstream.respond("soak-gated", gated)


def proxy_config(upstream: FakeUpstream, redis_url: str, global_limit: int, instance_limit: int) -> dict[str, Any]:
    return base_config(upstream, {
        "agent": {"default_model": "fake/soak-plain", "limits": {"max_concurrent_runs": instance_limit},
                  "profiles": {"careful": {"model": "fake/soak-gated", "requires_approval": ["calculator"]}}},
        "runs": {"store": "redis", "redis_url": redis_url, "poll_interval_s": 0.05, "lease_s": 5},
        "scale": {"global_max_concurrent_runs": global_limit, "redis_url": redis_url},
    })


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    fivexx: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def saw(self, response: httpx.Response, what: str) -> httpx.Response:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.fivexx.append(f"{what}: {response.status_code} {response.text[:200]}")
        return response


class Client:
    """One soak client: one action on one run."""

    def __init__(self, http: httpx.AsyncClient, tally: Tally, rng: random.Random) -> None:
        self.http, self.tally, self.rng = http, tally, rng

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.tally.saw(await self.http.post(path, json=body), f"POST {path}")

    async def status(self, run_id: str) -> dict[str, Any]:
        return self.tally.saw(await self.http.get(f"/agent/runs/{run_id}"), "GET run").json()

    async def until(self, run_id: str, wanted: set[str], timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body = await self.status(run_id)
            if body.get("status") in wanted or time.monotonic() > deadline:
                return body
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def submit(self, body: dict[str, Any]) -> str | None:
        response = await self.post("/agent/run", {**body, "background": True})
        if response.status_code != 202:
            self.tally.problems.append(f"background submission: {response.status_code} {response.text[:200]}")
            return None
        return str(response.json()["run_id"])

    async def stream_lines(self, path: str, body: dict[str, Any] | None, lines: int) -> str | None:
        """Open an SSE stream, read ``lines`` lines, hang up; the run id header."""
        method = "POST" if body is not None else "GET"
        async with self.http.stream(method, path, json=body) as response:
            self.tally.saw(response, f"{method} {path} (stream)")
            run_id = response.headers.get("x-proxy-ext-run-id") or response.headers.get("x-proxy-ext-trace-id")
            if response.status_code != 200:
                await response.aread()
                return None
            read = 0
            async for _ in response.aiter_lines():
                read += 1
                if read >= lines:
                    break
        return run_id

    def expect(self, action: str, body: dict[str, Any], allowed: set[str]) -> None:
        status = body.get("status")
        self.tally.outcomes[f"{action}:{status}"] += 1
        if status not in allowed:
            self.tally.problems.append(f"{action}: run {body.get('run_id')} ended {status} (allowed {sorted(allowed)}): {json.dumps(body)[:300]}")

    async def run(self, action: str) -> None:
        try:
            await getattr(self, "_" + action)(action)
        except httpx.TransportError as exc:  # the connection broke: say which request, and how
            self.tally.problems.append(f"{action}: {type(exc).__name__} {exc!r} on {exc.request.method} {exc.request.url.path} "
                                       f"(cause {exc.__cause__!r})")

    async def _plain(self, action: str) -> None:
        if run_id := await self.submit({"input": "soak", "model": "fake/soak-plain"}):
            self.expect(action, await self.until(run_id, FINAL), {"completed"})

    async def _stream_drop(self, action: str) -> None:
        run_id = await self.stream_lines("/agent/run", {"input": "soak", "model": "fake/soak-slow", "background": True, "stream": True},
                                         self.rng.randint(1, 6))
        if run_id:
            self.expect(action, await self.until(run_id, FINAL), {"completed"})

    async def _cancel(self, action: str) -> None:
        if run_id := await self.submit({"input": "soak", "model": "fake/soak-slow"}):
            await asyncio.sleep(self.rng.uniform(0, 1.2))
            cancelled = await self.post(f"/agent/runs/{run_id}/cancel", {})
            if cancelled.status_code not in (200, 409):
                self.tally.problems.append(f"cancel: {cancelled.status_code} {cancelled.text[:200]}")
            self.expect(action, await self.until(run_id, FINAL), {"cancelled", "completed"} if cancelled.status_code == 200 else {"completed"})

    async def _decide(self, run_id: str, approve: bool) -> httpx.Response:
        waiting = await self.until(run_id, {"awaiting_approval"} | FINAL)
        calls = waiting.get("pending_approvals") or []
        if waiting.get("status") != "awaiting_approval" or not calls:
            self.tally.problems.append(f"approval: run {run_id} is {waiting.get('status')}, not awaiting approval")
        decisions = [{"call_id": c["id"], "approve": approve, **({} if approve else {"reason": "soak says no"})} for c in calls]
        return await self.post(f"/agent/runs/{run_id}/approvals", {"decisions": decisions or [{"call_id": "none", "approve": approve}]})

    async def _approve(self, action: str, approve: bool = True) -> None:
        if run_id := await self.submit({"input": "soak", "profile": "careful"}):
            decided = await self._decide(run_id, approve)
            if decided.status_code != 200:
                self.tally.problems.append(f"{action}: decision answered {decided.status_code} {decided.text[:200]}")
            self.expect(action, await self.until(run_id, FINAL), {"completed"})

    async def _deny(self, action: str) -> None:
        await self._approve(action, approve=False)

    async def _cancel_waiting(self, action: str) -> None:
        if run_id := await self.submit({"input": "soak", "profile": "careful"}):
            await self.until(run_id, {"awaiting_approval"} | FINAL)
            cancelled = await self.post(f"/agent/runs/{run_id}/cancel", {})
            if cancelled.status_code != 200:
                self.tally.problems.append(f"cancel_waiting: {cancelled.status_code} {cancelled.text[:200]}")
            self.expect(action, await self.until(run_id, FINAL), {"cancelled"})

    async def _reader_drop(self, action: str) -> None:
        if run_id := await self.submit({"input": "soak", "model": "fake/soak-slow"}):
            await self.stream_lines(f"/agent/runs/{run_id}/events", None, self.rng.randint(1, 4))
            self.expect(action, await self.until(run_id, FINAL), {"completed"})

    async def _fg_stream_drop(self, action: str) -> None:  # a foreground run: its client leaving cancels it
        await self.stream_lines("/agent/run", {"input": "soak", "model": "fake/soak-slow", "stream": True}, self.rng.randint(1, 5))
        self.tally.outcomes[f"{action}:dropped"] += 1

    async def _submit_drop(self, action: str) -> None:  # hangs up before the 202 (the run may exist: it must end too)
        try:
            await self.http.post("/agent/run", json={"input": "soak", "model": "fake/soak-plain", "background": True},
                                 timeout=self.rng.uniform(0.001, 0.05))
        except httpx.TimeoutException:
            self.tally.outcomes[f"{action}:dropped"] += 1
        else:
            self.tally.outcomes[f"{action}:answered"] += 1

    async def _fg_park(self, action: str) -> None:
        paused = await self.post("/agent/run", {"input": "soak", "profile": "careful"})
        if paused.status_code == 429:  # every slot (instance or global) taken by background runs: allowed
            self.tally.outcomes[f"{action}:429"] += 1
            return
        envelope = paused.json()
        if envelope.get("stopped_reason") != "awaiting_approval":
            self.tally.problems.append(f"fg_park: {paused.status_code} {paused.text[:200]}")
            return
        run_id = envelope["metrics"]["trace_id"]
        decided = await self._decide(run_id, True)
        if decided.status_code != 200:
            self.tally.problems.append(f"fg_park: decision answered {decided.status_code} {decided.text[:200]}")
        self.expect(action, await self.until(run_id, FINAL), {"completed"})


def _proc_group(leader: int) -> dict[int, tuple[str, int, int]]:
    """pid -> (name, open fds, threads) of the processes in the proxy's process group."""
    found: dict[int, tuple[str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                head, rest = handle.read().rsplit(")", 1)
            if int(rest.split()[2]) != leader:
                continue
            found[int(entry)] = (head.split("(", 1)[1], len(os.listdir(f"/proc/{entry}/fd")), len(os.listdir(f"/proc/{entry}/task")))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _gauge(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def idle_state(proxy: ProxyProcess, client: httpx.Client, store: redis.Redis) -> dict[str, float]:
    metrics = client.get("/metrics").text
    leases = sum(int(store.zcard(key)) for key in store.scan_iter(f"{LEASE_PREFIX}*") if store.type(key) == b"zset")
    open_runs = sum(int(store.zcard(f"proxy_ext:durable:status:{s}")) for s in ("queued", "running", "awaiting_approval"))
    return {"runs_in_progress": _gauge(metrics, "proxy_ext_agent_runs_in_progress"), "agent_tasks": _gauge(metrics, "proxy_ext_agent_tasks"),
            "leases": leases, "open_runs": open_runs}


def _settle(proxy: ProxyProcess, client: httpx.Client, store: redis.Redis, timeout_s: float = 30) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = idle_state(proxy, client, store)
        if not any(state.values()) or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


class _Peaks:
    """The most global-limit leases (Redis) seen at once during a round, sampled in a thread."""

    def __init__(self, store: redis.Redis) -> None:
        self.store, self.leases, self._stop = store, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.leases = max(self.leases, int(self.store.zcard(LEASE_PREFIX)))

    def __enter__(self) -> "_Peaks":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _round(proxy: ProxyProcess, runs: int, rng: random.Random, tally: Tally) -> None:
    # keep-alive shorter than uvicorn's 5 s: a pooled connection is never reused just as the server closes it
    limits = httpx.Limits(max_connections=runs * 2 + 10, max_keepalive_connections=runs, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=proxy.base_url, headers=proxy.headers, timeout=60, limits=limits) as http:
        clients = [Client(http, tally, random.Random(rng.random())) for _ in range(runs)]
        actions = [ACTIONS[i % len(ACTIONS)] for i in range(runs)]  # every action, in a seeded order
        rng.shuffle(actions)
        done = await asyncio.gather(*(c.run(a) for c, a in zip(clients, actions, strict=True)), return_exceptions=True)
    for action, outcome in zip(actions, done, strict=True):
        if isinstance(outcome, BaseException):
            tally.problems.append(f"{action}: client raised {type(outcome).__name__}: {outcome}")


def soak(rounds: int = 3, runs: int = 150, workers: int = 2, seed: int = 1, global_limit: int = 12, instance_limit: int = 16,
         verbose: bool = True) -> dict[str, Any]:
    """Run the soak; the report (``problems`` empty: every check held)."""
    rng = random.Random(seed)
    report: dict[str, Any] = {"rounds": [], "problems": []}
    args = ["--num_workers", str(workers), "--timeout_worker_healthcheck", "120"] if workers > 1 else []
    with RedisServer() as server, FakeUpstream() as upstream:
        _upstream_replies(upstream, rng)
        config = proxy_config(upstream, server.url, global_limit, instance_limit)
        config["proxy_ext"]["scale"]["state_dir"] = tempfile.mkdtemp(prefix="proxy-ext-soak-")
        store = redis.Redis.from_url(server.url)
        with ProxyProcess(config, env={"PYTHONPATH": str(REPO_ROOT)}, args=args, startup_timeout_s=150) as proxy, \
                httpx.Client(base_url=proxy.base_url, headers=proxy.headers, timeout=30) as client:
            assert proxy.process is not None
            baseline: dict[int, tuple[str, int, int]] | None = None
            for number in range(1, rounds + 1):
                tally = Tally()
                started = time.monotonic()
                with _Peaks(store) as peaks:
                    asyncio.run(_round(proxy, runs, rng, tally))
                took = time.monotonic() - started
                state = _settle(proxy, client, store)
                procs = _proc_group(proxy.process.pid)
                baseline = baseline or procs
                line = {"round": number, "runs": runs, "seconds": round(took, 1), "statuses": dict(tally.statuses), "peak_leases": peaks.leases, **state,
                        "outcomes": dict(sorted(tally.outcomes.items())),
                        "procs": {pid: {"name": n, "fds": f, "threads": t} for pid, (n, f, t) in sorted(procs.items())}}
                report["rounds"].append(line)
                problems = [*tally.problems, *tally.fivexx]
                problems += [f"round {number}: {k} = {v} once idle" for k, v in state.items() if v]
                if not 0 < peaks.leases <= global_limit:
                    problems.append(f"round {number}: {peaks.leases} global-limit leases at once (limit {global_limit})")
                for pid, (name, fds, threads) in procs.items():
                    if pid in baseline and (fds > baseline[pid][1] + FD_SLACK or threads > baseline[pid][2] + THREAD_SLACK):
                        problems.append(f"round {number}: {name} {pid} fds {baseline[pid][1]} -> {fds}, threads {baseline[pid][2]} -> {threads}")
                report["problems"] += problems
                if verbose:
                    print(json.dumps(line), flush=True)
                    for problem in problems[:20]:
                        print("  PROBLEM", problem, flush=True)
            log = proxy.log(None)
        report["tracebacks"] = log.count("Traceback")
        report["log_errors"] = [line for line in log.splitlines() if re.search(r"Traceback|ERROR|never retrieved|Exception", line)][:20]
        if report["tracebacks"] or report["log_errors"]:
            report["problems"].append(f"the proxy log has {report['tracebacks']} traceback(s): {report['log_errors'][:5]}")
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=150, help="concurrent clients per round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--global-limit", type=int, default=12, help="scale.global_max_concurrent_runs")
    parser.add_argument("--instance-limit", type=int, default=16, help="agent.limits.max_concurrent_runs")
    options = parser.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    started = time.monotonic()
    report = soak(options.rounds, options.runs, options.workers, options.seed, options.global_limit, options.instance_limit)
    print(f"soak: {options.rounds} round(s) x {options.runs} runs, {options.workers} worker(s), {time.monotonic() - started:.0f} s; "
          f"tracebacks in the proxy log: {report['tracebacks']}; problems: {len(report['problems'])}")
    for problem in report["problems"][:40]:
        print("  ", problem)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
