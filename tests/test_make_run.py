"""`make run` serves the default config: with a generated strong key, or with the operator's own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import REPO_ROOT, free_port

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

IGNORE = shutil.ignore_patterns(".git", ".env", ".venv", ".tools", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis", "traces")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    # A copy of the project without .env, so the developer's own .env is never touched. It shares
    # this checkout's environment (.venv, .tools): building one from uv.lock is what CI does on
    # every fresh clone anyway, and would double this module's time.
    work = tmp_path_factory.mktemp("make-run") / "proj"
    shutil.copytree(REPO_ROOT, work, ignore=IGNORE, symlinks=True)
    for name in (".venv", ".tools"):
        if (REPO_ROOT / name).exists():
            (work / name).symlink_to(REPO_ROOT / name)
    return work


def serve(project: Path, env_key: str | None, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"LITELLM_MASTER_KEY", "MAKEFLAGS", "MAKELEVEL"}}
    if env_key:
        env["LITELLM_MASTER_KEY"] = env_key
    with open(log, "wb") as out:
        process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.3)
    stop(process)
    pytest.fail("make run did not serve in time:\n" + log.read_text()[-3000:])


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def chat(port: int, key: str) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "echo", "messages": [{"role": "user", "content": "served"}]}, timeout=30)


def test_make_run_generates_a_strong_key_once(project, tmp_path):
    process, port = serve(project, None, tmp_path / "run.log")
    try:
        dotenv = (project / ".env").read_text()
        match = re.fullmatch(r"LITELLM_MASTER_KEY=(sk-[0-9a-f]{48})\n", dotenv)
        assert match, dotenv
        assert oct((project / ".env").stat().st_mode & 0o777) == "0o600"
        key = match.group(1)
        log = (tmp_path / "run.log").read_text()
        assert "Generated a random master key" in log and key not in log
        ok = chat(port, key)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "served"
        assert chat(port, "sk-wrong").status_code in (400, 401)
    finally:
        stop(process)
    process, port = serve(project, None, tmp_path / "run2.log")  # second start reuses the key
    try:
        assert (project / ".env").read_text() == dotenv
        assert chat(port, key).status_code == 200
    finally:
        stop(process)


def test_make_run_uses_the_operators_key(project, tmp_path):
    own = "sk-" + "ab12" * 12
    process, port = serve(project, own, tmp_path / "run.log")
    try:
        assert chat(port, own).status_code == 200
        assert "master key in the LITELLM_MASTER_KEY environment variable" in (tmp_path / "run.log").read_text()
    finally:
        stop(process)
