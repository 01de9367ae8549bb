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


def test_make_doctor_and_make_run_take_the_environment_over_dotenv(project, tmp_path):
    # `litellm --config …` reads .env itself, under the environment; `make run` and `make doctor`
    # sourced .env over it: `LITELLM_ENABLE_CODEX_AGENT=0 make run` stayed on with a fork .env saying 1.
    work = tmp_path / "proj"
    shutil.copytree(project, work, ignore=shutil.ignore_patterns(".env"), symlinks=True)
    (work / ".env").write_text("LITELLM_MASTER_KEY=sk-" + "cd34" * 12 + "\nLITELLM_ENABLE_CODEX_AGENT=1\n"
                               "CODEX_AGENT_API_BASE=http://127.0.0.1:9/v1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "CODEX_AGENT_", "MAKE"))}

    def codex_line(**extra: str) -> str:
        done = subprocess.run(["make", "doctor"], cwd=work, env={**env, **extra}, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0 and "no master key" not in done.stdout, done.stdout + done.stderr
        return next(line for line in done.stdout.splitlines() if "codex-agent provider" in line)

    assert codex_line().endswith("on (mode=http)")  # from .env
    assert " off (" in codex_line(LITELLM_ENABLE_CODEX_AGENT="0")  # the environment wins
    assert " off (" not in codex_line(LITELLM_MASTER_KEY="")  # an empty key is no key: .env's is used
