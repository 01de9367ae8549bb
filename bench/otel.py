"""Proxy CPU per agent run with the OpenTelemetry export on vs off, side by side in one run.

Also the consumer alone, in this process: the events of the same 4-turn run turned into spans and
exported (batched, OTLP/HTTP protobuf, to the same receiver), CPU per run over many runs — the
part of the difference above that is proxy_ext's, without the noise of two whole proxies.

Two proxies on one fake upstream, the same 4-turn run (3 calls of the local ``current_time``
tool, then an answer: 8 spans per run with OTel on), alternating between them so drift on a shared
machine hits both alike. The "on" proxy exports every span over OTLP/HTTP to a real receiver
(batched on the exporter's thread, which is part of the proxy CPU measured from /proc).
"""

from __future__ import annotations

import statistics
import time

import httpx

from bench._common import Cpu, orders
from tests.harness import FakeUpstream, ProxyProcess, Reply, call, fake_model_entry
from tests.harness.otlp_receiver import OtlpReceiver

K = 4
ROUNDS = 60
WARMUP = 5


def _config(upstream: FakeUpstream, otel: dict | None) -> dict:
    traces = {"otel": otel} if otel is not None else {}
    return {
        "model_list": [fake_model_entry("fake/*", upstream.base_url, "*")],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"agent": {"default_model": "fake/bench-otel", "max_iterations": 16}, "cost": {"enabled": False},
                      "traces": traces},
    }


def _k_turns(body: dict) -> Reply:
    done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    return Reply(tool_calls=[call("current_time", {})]) if done < K - 1 else Reply(text="done")


def _run(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post("/agent/run", json={"input": "go", "model": "fake/bench-otel"})
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["metrics"]["iterations"] == K, body
    return time.perf_counter() - started


def _consumer_alone(receiver: OtlpReceiver, runs: int = 2000) -> float:
    """CPU µs per run of the OTel consumer (spans + batched export) for the events of one K-turn run."""
    from proxy_ext.agent import events as ev
    from proxy_ext.agent import otel, otel_export
    from proxy_ext.agent.envelope import Envelope, RunMetrics
    from proxy_ext.config import OtelConfig

    config = OtelConfig(enabled=True, endpoint=receiver.endpoint, schedule_delay_s=0.5)
    provider = otel_export._build(otel_export.resolve(config))
    tracer = provider.get_tracer("proxy_ext")
    headers = {"authorization": "Bearer sk-bench-0123456789"}
    calls = [{"id": "c1", "type": "function", "function": {"name": "current_time", "arguments": "{}"}}]
    envelope = Envelope(ok=True, final_answer="done", stopped_reason="final_answer", messages=[], metrics=RunMetrics(trace_id="t"))
    started = time.process_time()
    for index in range(runs):
        recorder = otel.OtelRecorder(tracer, trace_id=f"run-{index}", profile=None, parent=otel.parent_context(headers),
                                     config=config, headers=headers)
        recorder(ev.RunStarted(f"run-{index}", ["fake/bench-otel"], "local", ["current_time"]))
        for turn in range(1, K + 1):
            recorder(ev.ModelTurnStarted("fake/bench-otel", turn))
            recorder.trace_headers()
            message = {"role": "assistant", "content": None, "tool_calls": calls} if turn < K else {"role": "assistant", "content": "done"}
            recorder(ev.ModelTurnFinished("fake/bench-otel", turn, True, 1.0, 11, 7, 0.0, message))
            if turn < K:
                recorder(ev.ToolCallStarted("c1", "current_time", "{}"))
                recorder(ev.ToolCallFinished("c1", "current_time", True, "12:00", 0.1))
        recorder(ev.RunFinished(envelope))
    provider.force_flush(10_000)
    used = time.process_time() - started
    provider.shutdown()
    return used * 1e6 / runs


def main() -> None:
    with FakeUpstream() as upstream, OtlpReceiver() as receiver:
        upstream.respond("bench-otel", _k_turns)
        otel = {"enabled": True, "endpoint": receiver.endpoint, "schedule_delay_s": 0.5}
        with ProxyProcess(_config(upstream, None)) as off, ProxyProcess(_config(upstream, otel)) as on:
            proxies = {"off": off, "on": on}
            clients = {name: httpx.Client(base_url=p.base_url, headers=p.headers, timeout=60) for name, p in proxies.items()}
            try:
                for _ in range(WARMUP):
                    for client in clients.values():
                        _run(client)
                wall: dict[str, list[float]] = {"off": [], "on": []}
                meter = Cpu(proxies)  # over the whole section, both proxies: the exporter's thread included
                for order in orders(["off", "on"], ROUNDS):
                    for name in order:
                        wall[name].append(_run(clients[name]))
                time.sleep(1.0)  # the last batch is exported
                per_run = meter.per_request_ms(ROUNDS)
            finally:
                for client in clients.values():
                    client.close()
        spans = len([s for s in receiver.snapshot() if s.scope == "proxy_ext"])
        alone = _consumer_alone(receiver)
        for name in ("off", "on"):
            print(f"OTel {name:<3}  {K}-turn /agent/run  p50 {statistics.median(wall[name]) * 1000:7.2f} ms   "
                  f"proxy CPU {per_run[name]:6.2f} ms/run")
        print(f"OTel on : off proxy CPU per run = {per_run['on'] / per_run['off']:.3f} "
              f"({per_run['on'] - per_run['off']:+.2f} ms per run, {2 * K} spans per run; {spans} spans received)")
        print(f"the consumer alone (spans + batched OTLP export, in-process): {alone:.0f} µs CPU per {K}-turn run "
              f"({alone / (2 * K):.0f} µs per span)")


if __name__ == "__main__":
    main()
