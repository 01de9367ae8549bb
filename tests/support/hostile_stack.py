"""A proxy with every feature on, for hostile-client hunts by hand (not a test module).

    PYTHONPATH=<worktree> LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python -m tests.support.hostile_stack \
        /tmp/hostile/stack.json [--workers 2]

Starts a real redis-server, the fake upstream, the reference tool host, an OTLP sink and the stock
proxy (durable runs on Redis, approvals, the global run limit, MCP over stdio, http tools, exec
tools, mini-agent and codex-agent models, OTel export, custom_auth identities), writes where they
are to the JSON file, and serves until interrupted.

The upstream model ``fake/hostile`` reads the first user message: ``py <s>`` makes an exec_python
call sleeping ``<s>`` s, ``sh <s>`` an exec_shell one, ``mcp`` an MCP echo, ``host <s>`` the tool
host's sleep, ``note`` a record_note (needs approval in profile ``careful``); anything else gets a
slowly streamed answer.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.codex_fake import install_fake_codex
from tests.conftest import base_config
from tests.harness import REPO_ROOT, FakeUpstream, ProxyProcess, Reply, call
from tests.harness.otlp_receiver import OtlpReceiver
from tests.harness.redis_server import RedisServer
from tests.harness.tool_host import ToolHostProcess

EVERYTHING = REPO_ROOT / "tests" / "mcp_everything" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
WORDS = " ".join(f"w{i}" for i in range(30))


def responder(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return Reply(text=WORDS, chunk_delay_s=0.03)
    text = next((m.get("content") for m in messages if m.get("role") == "user"), "")
    text = text if isinstance(text, str) else ""
    if m := re.search(r"\bpy (\S+)", text):
        return Reply(tool_calls=[call("exec_python", {"code": f"import time; time.sleep({float(m.group(1))})  # hostile"})])
    if m := re.search(r"\bsh (\S+)", text):
        return Reply(tool_calls=[call("exec_shell", {"command": f"sleep {float(m.group(1))}"})])
    if "mcp" in text:
        return Reply(tool_calls=[call("everything-echo", {"message": "hi"})])
    if m := re.search(r"\bhost (\S+)", text):
        return Reply(tool_calls=[call("sleep", {"seconds": float(m.group(1))})])
    if "note" in text:
        return Reply(tool_calls=[call("record_note", {"note": "hostile", "seconds": 0.2})])
    return Reply(text=WORDS, chunk_delay_s=0.02)


def config(upstream: FakeUpstream, redis_url: str, host: ToolHostProcess, receiver: OtlpReceiver, work: Path) -> dict[str, Any]:
    codex = {"enabled": True, "cli": {"binary": str(install_fake_codex(work)), "timeout_s": 60,
                                      "extra_env": {"FAKE_CODEX_DIR": str(work)}}}
    cfg = base_config(upstream, {
        "agent": {"default_model": "fake/hostile", "max_iterations": 4,
                  "local_tools": ["tests.support.side_effects.record_note"],
                  "limits": {"max_concurrent_runs": 8},
                  "profiles": {"careful": {"model": "fake/hostile", "requires_approval": ["record_*", "exec_*"]},
                               "mini": {"model": "fake/hostile", "tools": ["exec_python", "everything-echo"]}}},
        "runs": {"store": "redis", "redis_url": redis_url, "lease_s": 5, "poll_interval_s": 0.1, "approval_timeout_s": 60},
        "scale": {"global_max_concurrent_runs": 20, "redis_url": redis_url, "lease_ttl_s": 10, "max_concurrent_runs_per_key": 6},
        "tools": {"exec": {"enabled": True, "timeout_s": 20, "max_timeout_s": 30},
                  "mcp": {"timeout_s": 8},
                  "http": {"base_url": host.base_url, "timeout_s": 5, "max_retries": 1}},
        "traces": {"enabled": True, "path": str(work / "runs.jsonl"),
                   "otel": {"enabled": True, "endpoint": receiver.endpoint, "schedule_delay_s": 0.2, "timeout_s": 1}},
        "providers": {"codex_agent": codex},
    }, models=[{"model_name": "mini-agent/mini", "litellm_params": {"model": "mini-agent/mini"}},
               *({"model_name": f"codex-{s}", "litellm_params": {"model": f"codex-agent/{s}", "codex_agent": {"mode": "cli"}}}
                 for s in ("hang", "slow-stream", "ok"))])
    cfg["mcp_servers"] = {"everything": {"transport": "stdio", "command": "node", "args": [str(EVERYTHING), "stdio"]}}
    cfg["litellm_settings"]["custom_provider_map"].append(
        {"provider": "mini-agent", "custom_handler": "proxy_ext.providers.mini_agent.handler"})
    cfg["general_settings"]["custom_auth"] = "tests.support.custom_auth.user_api_key_auth"
    cfg["general_settings"]["custom_auth_run_common_checks"] = True
    cfg["litellm_settings"]["enable_post_custom_auth_checks"] = True
    return cfg


def main() -> None:
    out = Path(sys.argv[1])
    workers = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else 1
    work = out.parent / "stack-work"
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with RedisServer() as redis, FakeUpstream() as upstream, ToolHostProcess() as host, OtlpReceiver() as receiver:
        upstream.respond("hostile", responder)
        args = ["--num_workers", str(workers), "--timeout_worker_healthcheck", "120"] if workers > 1 else []
        env = {"PYTHONPATH": str(REPO_ROOT), "SIDE_EFFECTS_PATH": str(work / "effects.jsonl"), "LITELLM_ENABLE_MCP_STDIO": "true"}
        with ProxyProcess(config(upstream, redis.url, host, receiver, work), env=env, args=args, startup_timeout_s=180) as proxy:
            assert proxy.process is not None
            out.write_text(json.dumps({"base_url": proxy.base_url, "master_key": proxy.master_key, "pid": proxy.process.pid,
                                       "redis_url": redis.url, "redis_pid": redis.process.pid if redis.process else None,
                                       "log": str(proxy.log_path), "config": str(proxy.config_path), "codex_dir": str(work),
                                       "otlp": receiver.traces_url}))
            print("ready", out.read_text(), flush=True)
            while True:
                time.sleep(1)
                upstream.requests.clear()


if __name__ == "__main__":
    main()
