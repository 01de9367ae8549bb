"""codex-agent overhead on one proxy, side by side, alternating requests:

- HTTP mode (``codex-agent/…`` → the fake upstream as codex-agent service) vs the stock ``openai/…``
  provider to the same fake upstream: the ratio is the provider's own overhead;
- CLI mode with the fake ``codex`` (process spawn + JSONL parsing + group clean-up per call);
- CLI mode with the real ``@openai/codex`` binary talking back to this proxy, when installed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import yaml

from tests.codex_fake import install_fake_codex
from tests.harness import REPO_ROOT, FakeUpstream, ProxyProcess, fake_model_entry

N_HTTP = 150
N_CLI = 30
N_REAL = 5
CODEX_BIN = REPO_ROOT / "tests" / "codex_cli" / "node_modules" / ".bin" / "codex"
MESSAGES = [{"role": "user", "content": "hello"}]


def _config(upstream: FakeUpstream, fake_codex: Path) -> dict:
    return {
        "model_list": [
            fake_model_entry("stock", upstream.base_url, "bench"),
            fake_model_entry("fake/*", upstream.base_url, "*"),
            {"model_name": "agent-http", "litellm_params": {"model": "codex-agent/bench", "api_base": upstream.base_url, "api_key": "sk-x"}},
            {"model_name": "agent-cli-fake", "litellm_params": {"model": "codex-agent/ok", "codex_agent": {"mode": "cli", "cli": {"binary": str(fake_codex)}}}},
            {"model_name": "agent-cli-real", "litellm_params": {"model": "codex-agent/fake/bench", "codex_agent": {"mode": "cli"}}},
        ],
        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},  # registers codex-agent itself
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "proxy_ext": {"providers": {"codex_agent": {"enabled": True}}},
    }


def _time(client, model: str) -> float:
    started = time.perf_counter()
    client.chat.completions.create(model=model, messages=MESSAGES)
    return (time.perf_counter() - started) * 1000


def _report(name: str, values: list[float]) -> float:
    p50 = statistics.median(values)
    p95 = statistics.quantiles(values, n=20)[18] if len(values) >= 20 else max(values)
    print(f"{name:<16} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  (n={len(values)})")
    return p50


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-codex-"))
    with FakeUpstream() as upstream:
        process = ProxyProcess(_config(upstream, install_fake_codex(work)))
        config = yaml.safe_load(process.config_path.read_text())
        config["proxy_ext"]["providers"]["codex_agent"]["cli"] = {
            "binary": str(CODEX_BIN),
            "config_overrides": ['model_provider="p"', 'model_providers.p.name="p"', f'model_providers.p.base_url="{process.base_url}/v1"',
                                 'model_providers.p.env_key="P_KEY"', 'model_providers.p.wire_api="responses"'],
            "extra_env": {"P_KEY": "os.environ/LITELLM_MASTER_KEY", "CODEX_HOME": str(work)},
        }
        process.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with process:
            client = process.openai(timeout=120)
            for _ in range(10):
                _time(client, "stock"), _time(client, "agent-http")
            timings: dict[str, list[float]] = {"stock": [], "agent-http": []}
            for _ in range(N_HTTP):
                for model in timings:
                    timings[model].append(_time(client, model))
            stock = _report("stock openai/", timings["stock"])
            http = _report("codex-agent http", timings["agent-http"])
            print(f"ratio codex-agent http : stock p50 = {http / stock:.2f}")
            _time(client, "agent-cli-fake")
            _report("cli (fake codex)", [_time(client, "agent-cli-fake") for _ in range(N_CLI)])
            if CODEX_BIN.exists():
                _time(client, "agent-cli-real")
                _report("cli (real codex)", [_time(client, "agent-cli-real") for _ in range(N_REAL)])
            else:
                print("cli (real codex) skipped: run `make node-deps`")
