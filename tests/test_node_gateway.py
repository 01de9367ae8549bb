"""Node gateway test: the official `openai` npm package (pinned in tests/node/package-lock.json)
against the real proxy, reading usage.cost from a chat reply and from a stream's usage chunk.

Runs in `make test` (its `node-deps` target installs tests/node/node_modules with `npm ci`); skipped
with a reason when `node` or the installed package is missing."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply, fake_model_entry

NODE_DIR = REPO_ROOT / "tests" / "node"
NODE = shutil.which("node")
IN_PRICE, OUT_PRICE = 1e-6, 2e-6
EXPECTED = 12 * IN_PRICE + 3 * OUT_PRICE

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed: the Node gateway test needs Node 18+"),
    pytest.mark.skipif(not (NODE_DIR / "node_modules" / "openai").is_dir(), reason="tests/node/node_modules missing: run `make node-deps` (npm ci)"),
]


def test_node_openai_client_reads_usage_cost(upstream):
    upstream.script("node-gw", Reply(text="hello from node", prompt_tokens=12, completion_tokens=3))
    models = [fake_model_entry("node-gw", upstream.base_url, "node-gw", input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE)]
    with ProxyProcess(base_config(upstream, {"cost": {"enabled": True}}, models=models)) as proxy:
        result = subprocess.run(
            [NODE, "gateway.mjs", f"{proxy.base_url}/v1", proxy.master_key, "node-gw"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=90,
            env={"PATH": "/usr/bin:/bin", "HOME": str(NODE_DIR)},  # no proxy secrets in the child
        )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["text"] == "hello from node" == seen["stream_text"]
    assert seen["cost"] == float(seen["header_cost"]) == pytest.approx(EXPECTED)
    assert seen["cost_details"] == {"input_cost": pytest.approx(12 * IN_PRICE), "output_cost": pytest.approx(3 * OUT_PRICE)}
    assert seen["stream_cost"] == pytest.approx(EXPECTED)
    assert seen["stream_cost_details"]["input_cost"] == pytest.approx(12 * IN_PRICE)
