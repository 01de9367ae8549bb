"""The curl and openai-client examples of docs/agent.md, run as written against proxy_config.yaml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.harness import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "agent.md").read_text()


def _block(language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", DOC, re.S).group(1)


def _env(proxy) -> dict[str, str]:
    return {**os.environ, "LITELLM_MASTER_KEY": proxy.master_key}


@pytest.mark.skipif(not os.path.exists("/usr/bin/curl"), reason="curl is not installed")
def test_curl_example(default_proxy, tmp_path):
    script = _block("bash").replace("127.0.0.1:4000", f"127.0.0.1:{default_proxy.port}")
    script = script.replace("source .env", f"cd {tmp_path}")  # the key comes from the environment here
    result = subprocess.run(["bash", "-c", script], env=_env(default_proxy), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["ok"] is True and body["final_answer"] == "hello agent" and body["metrics"]["used_model"] == "echo"


def test_python_example(default_proxy):
    script = _block("python").replace("127.0.0.1:4000", f"127.0.0.1:{default_proxy.port}")
    result = subprocess.run([sys.executable, "-c", script], env=_env(default_proxy), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True final_answer hello agent", "echo 0.0"]


def test_default_config_serves_the_demo_agent_profile_as_a_model(default_proxy):
    client = default_proxy.openai()
    reply = client.chat.completions.create(model="agent-demo", messages=[{"role": "user", "content": "hello demo"}])
    assert reply.choices[0].message.content == "hello demo"
    assert reply.choices[0].message.provider_specific_fields["mini_agent"]["used_model"] == "echo"
    stream = client.chat.completions.create(model="agent-demo", messages=[{"role": "user", "content": "one two"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two"
