"""The live tier itself (tests/test_live.py), run as `make smoke-live` runs it, in a subprocess:

- with no provider variables every flow is skipped, naming what is missing, and nothing fails;
- without ``--live`` (``make test``) the whole tier is one skipped line;
- with the variables pointing at the fake upstream (an OpenAI-compatible server standing in for
  OpenAI and for a codex-agent service) every flow's code runs and passes — so the tier works the
  day real keys are set.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.harness import REPO_ROOT, Reply, call
from tests.test_live import CODEX_BIN

LIVE_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "CODEX_AGENT_API_BASE", "CODEX_AGENT_API_KEY", "CODEX_AGENT_MODEL",
             "CODEX_BIN", "OPENAI_BASE_URL", "OPENAI_API_BASE", "LIVE_OPENAI_MODEL", "LIVE_ANTHROPIC_MODEL")


def pytest_live(*args: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in LIVE_VARS and not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "tests/test_live.py", "-p", "no:cacheprovider", "-q", *args],
                          cwd=REPO_ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout_s)


def test_without_variables_every_live_flow_is_skipped_naming_what_is_missing():
    result = pytest_live("--live", "-m", "live", "-rs", env={"CODEX_BIN": "/nonexistent/codex"})
    assert result.returncode == 0, result.stdout + result.stderr
    reasons = re.findall(r"SKIPPED \[1\] tests/test_live\.py:\d+: (.*)", result.stdout)
    assert sorted(reasons) == sorted([
        "set OPENAI_API_KEY to run this live flow",
        "set ANTHROPIC_API_KEY to run this live flow",
        "set OPENAI_API_KEY to run this live flow",
        "set OPENAI_API_KEY to run this live flow",
        "set CODEX_AGENT_API_BASE to run this live flow",
        "set OPENAI_API_KEY and CODEX_BIN (or run `make node-deps`) to run this live flow",
    ]), result.stdout
    assert "6 skipped" in result.stdout and "passed" not in result.stdout and "failed" not in result.stdout


def test_without_live_the_tier_is_one_skipped_line():
    result = pytest_live("-ra", env={"OPENAI_API_KEY": "sk-not-used"})
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, result.stdout
    assert re.fullmatch(r"SKIPPED \[6\] tests/conftest\.py:\d+: live tier \(real providers\): run `make smoke-live`", skipped[0])


def _fake_model(body: dict) -> Reply:
    """A model that calls the calculator when it has tools, and otherwise says what it was asked."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply(text=f"The answer is {last['content']}.")
    text = str(last.get("content"))
    numbers = re.findall(r"(\d+) \* (\d+)", text)
    if body.get("tools") and numbers:
        return Reply(tool_calls=[call("calculator", {"expression": " * ".join(numbers[0])})])
    return Reply(text="pong")


def test_with_variables_every_live_flow_runs(upstream):
    upstream.respond("gpt-4o-mini", _fake_model)
    upstream.script("live-codex", Reply(text="pong from the codex-agent service"))
    env = {"OPENAI_API_KEY": "sk-fake-live-openai", "OPENAI_BASE_URL": upstream.base_url,
           "CODEX_AGENT_API_BASE": upstream.base_url, "CODEX_AGENT_API_KEY": "sk-fake-live-codex", "CODEX_AGENT_MODEL": "live-codex"}
    result = pytest_live("--live", "-m", "live", "-rs", env=env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    expected = "5 passed, 1 skipped" if os.access(CODEX_BIN, os.X_OK) else "4 passed, 2 skipped"
    assert expected in result.stdout, result.stdout
    assert "set ANTHROPIC_API_KEY to run this live flow" in result.stdout
    sent = upstream.requests_for("live-codex")
    assert sent and all(r["headers"].get("authorization") == "Bearer sk-fake-live-codex" for r in sent)
    assert any(r["body"].get("tools") for r in upstream.requests_for("gpt-4o-mini"))  # the agent offered the calculator
