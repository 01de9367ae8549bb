"""`make run` serves the default config and generates a strong master key when none is set."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from tests.harness import REPO_ROOT, free_port


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_serves_with_a_generated_key(tmp_path):
    # A copy of the project without .env and without environments: `make run` bootstraps itself,
    # and the developer's own .env is never touched.
    work = tmp_path / "proj"
    shutil.copytree(REPO_ROOT, work, ignore=shutil.ignore_patterns(".git", ".env", ".venv", ".tools", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis", "traces"), symlinks=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"LITELLM_MASTER_KEY", "MAKEFLAGS", "MAKELEVEL"}}
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("make run did not serve in time:\n" + log.read_text()[-3000:])
        dotenv = (work / ".env").read_text()
        match = re.fullmatch(r"LITELLM_MASTER_KEY=(sk-[0-9a-f]{48})\n", dotenv)
        assert match, dotenv
        assert oct((work / ".env").stat().st_mode & 0o777) == "0o600"
        key = match.group(1)
        assert "master key in" in log.read_text() and key not in log.read_text()
        ok = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": "echo", "messages": [{"role": "user", "content": "served"}]}, timeout=30)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "served"
        denied = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": "Bearer sk-wrong"},
                            json={"model": "echo", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
        assert denied.status_code in (400, 401)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
