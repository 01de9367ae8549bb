"""Start the real stock LiteLLM proxy (``litellm --config …``) as a subprocess for tests and benchmarks.

Each :class:`ProxyProcess` gets a free loopback port, a random master key, its own process group
(killed at teardown) and a log file. ``start()`` waits for ``/health/liveliness`` and fails with the
log's tail if the proxy exits or does not come up in time.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from tests.harness.fake_upstream import free_port

__all__ = ["LITELLM", "ProxyProcess", "REPO_ROOT", "RUNNING", "fake_model_entry", "wait_until_serving"]

REPO_ROOT = Path(__file__).resolve().parents[2]
LITELLM = str(Path(sys.executable).with_name("litellm"))
RUNNING: list["ProxyProcess"] = []
"""Proxies alive right now; the pytest hook prints their logs when a test fails."""


def pid_alive(pid: int) -> bool:
    """The process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fake_model_entry(model_name: str, upstream_base: str, upstream_model: str | None = None, **extra: Any) -> dict[str, Any]:
    """A model_list entry that routes ``model_name`` to the fake upstream."""
    return {
        "model_name": model_name,
        "litellm_params": {
            "model": f"openai/{upstream_model or model_name}",
            "api_base": upstream_base,
            "api_key": "sk-fake-upstream-key",
            **extra,
        },
    }


def wait_until_serving(process: subprocess.Popen[bytes], url: str, timeout_s: float, name: str,
                       log_tail: Callable[[], str], headers: dict[str, str] | None = None) -> None:
    """Poll ``url`` until it answers 200; RuntimeError (with the log's tail) if ``process`` exits
    first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} during start-up:\n{log_tail()}")
            try:
                if client.get(url, headers=headers).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {timeout_s}s:\n{log_tail()}")
            time.sleep(0.1)


class ProxyProcess:
    """One proxy subprocess. ``config`` is a mapping (written to a temp file) or a path."""

    def __init__(
        self,
        config: dict[str, Any] | str | os.PathLike[str],
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 90.0,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="proxy-ext-test-"))
        if isinstance(config, dict):
            self.config_path = self.workdir / "proxy_config.yaml"
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        else:
            self.config_path = Path(config)
        self.port = free_port()
        self.master_key = "sk-" + secrets.token_hex(24)
        self.log_path = self.workdir / "proxy.log"
        self.args = args or []
        self.cwd = Path(cwd) if cwd else self.workdir
        self.startup_timeout_s = startup_timeout_s
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_", "ANTHROPIC_"))},
            "LITELLM_MASTER_KEY": self.master_key,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONUNBUFFERED": "1",
            "LITELLM_LOG": "ERROR",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def log(self, tail_lines: int | None = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)

    def spawn(self) -> None:
        log = open(self.log_path, "wb")
        cmd = [LITELLM, "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        self.process = subprocess.Popen(
            cmd, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        RUNNING.append(self)

    def start(self) -> "ProxyProcess":
        """Spawn and wait until ``/health/liveliness`` answers."""
        self.spawn()
        assert self.process is not None
        try:
            wait_until_serving(self.process, f"{self.base_url}/health/liveliness", self.startup_timeout_s, "proxy", lambda: self.log(80))
        except RuntimeError:
            self.stop()
            raise
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the proxy's process group (Linux /proc): the work
        the proxy did, whatever else the machine runs (for benchmarks)."""
        assert self.process is not None
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # process group id
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def wait_exit(self, timeout_s: float = 90.0) -> int:
        """Wait for the process to exit on its own (for start-up failure tests); returns its code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.stop()

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process is None or self.process.poll() is not None and not self._group_alive():
            return
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)
                if not self._group_alive():
                    break
            except subprocess.TimeoutExpired:
                continue

    def _group_alive(self) -> bool:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def openai(self, **kwargs: Any) -> Any:
        """An official ``openai.OpenAI`` client for this proxy (master key)."""
        import openai

        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=kwargs.pop("api_key", self.master_key), max_retries=0, **kwargs)

    def async_openai(self, **kwargs: Any) -> Any:
        import openai

        return openai.AsyncOpenAI(base_url=f"{self.base_url}/v1", api_key=kwargs.pop("api_key", self.master_key), max_retries=0, **kwargs)
