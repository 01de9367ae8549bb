"""Start the reference tool host (``python -m examples.tool_host``) as a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


from tests.harness.fake_upstream import free_port
from tests.harness.proxy import REPO_ROOT, wait_until_serving

__all__ = ["ToolHostProcess"]


class ToolHostProcess:
    """The reference tool host on a free loopback port, in its own process group."""

    def __init__(self, token: str | None = None, startup_timeout_s: float = 30.0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.token = token
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(tempfile.mkstemp(prefix="tool-host-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Tool-Token": self.token} if self.token else {}

    def start(self) -> "ToolHostProcess":
        env = {k: v for k, v in os.environ.items() if k != "TOOL_HOST_TOKEN"}
        args = [sys.executable, "-m", "examples.tool_host", "--port", str(self.port)] + (["--token", self.token] if self.token else [])
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_until_serving(self.process, f"{self.base_url}/tools", self.startup_timeout_s, "tool host",
                               self.log_path.read_text, headers=self.headers)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __enter__(self) -> "ToolHostProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
