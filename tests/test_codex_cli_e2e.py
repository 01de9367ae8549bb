"""End to end with the real ``@openai/codex`` CLI (pinned in tests/codex_cli/package.json).

One proxy plays both roles: the CLI-mode model ``codex-real`` runs the real codex binary,
and codex's model provider is this same proxy (``/v1/responses``, Responses wire API — current codex
speaks nothing else), whose ``fake/*`` models are served by the fake upstream. So the answer travels
client → proxy → codex CLI → proxy /v1/responses → fake upstream, and back as a chat completion.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import base_config
from tests.harness import REPO_ROOT, ProxyProcess, Reply

CODEX_BIN = REPO_ROOT / "tests" / "codex_cli" / "node_modules" / ".bin" / "codex"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not CODEX_BIN.exists(),
    reason="the codex CLI is not installed: run `make node-deps` (npm ci in tests/codex_cli)",
)


@pytest.fixture(scope="module")
def codex_e2e_proxy(upstream, tmp_path_factory):
    codex_home = tmp_path_factory.mktemp("codex-home")
    models = [{"model_name": "codex-real", "litellm_params": {"model": "codex-agent/fake/codex-e2e", "codex_agent": {"mode": "cli"}}}]
    process = ProxyProcess(base_config(upstream, {}, models=models))
    # codex must know the proxy's port, which ProxyProcess has just chosen: finish the config now.
    config = yaml.safe_load(process.config_path.read_text())
    config["proxy_ext"]["providers"] = {"codex_agent": {"enabled": True, "cli": {
        "binary": str(CODEX_BIN),
        "timeout_s": 90,
        "config_overrides": [
            'model_provider="this_proxy"',
            'model_providers.this_proxy.name="this proxy"',
            f'model_providers.this_proxy.base_url="{process.base_url}/v1"',
            'model_providers.this_proxy.env_key="THIS_PROXY_KEY"',
            'model_providers.this_proxy.wire_api="responses"',
        ],
        # A test shortcut: production configs give codex a scoped virtual key, not the master key.
        "extra_env": {"THIS_PROXY_KEY": "os.environ/LITELLM_MASTER_KEY", "CODEX_HOME": str(codex_home)},
    }}}
    process.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with process:
        yield process


def test_real_codex_cli_answers_through_this_proxy(codex_e2e_proxy, upstream):
    upstream.script("codex-e2e", Reply(text="PONG from the fake upstream", prompt_tokens=21, completion_tokens=6))
    client = codex_e2e_proxy.openai(timeout=120)
    reply = client.chat.completions.create(model="codex-real", messages=[{"role": "user", "content": "Reply with PONG."}])
    assert reply.choices[0].message.content == "PONG from the fake upstream"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (21, 6)
    sent = upstream.requests_for("codex-e2e")[-1]
    assert sent["path"] == "/v1/responses" and sent["body"]["stream"] is True
    assert sent["headers"]["authorization"] == "Bearer sk-fake-upstream-key"  # the proxy's upstream key, not codex's
    assert "Reply with PONG." in str(sent["body"]["input"])

    chunks = list(client.chat.completions.create(model="codex-real", messages=[{"role": "user", "content": "again"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "PONG from the fake upstream"
