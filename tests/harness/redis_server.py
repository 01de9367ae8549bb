"""A real ``redis-server`` process on a free loopback port, for the tests of Redis-backed features
(`make system-deps` installs the Debian package where it is missing)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from tests.harness.fake_upstream import free_port

__all__ = ["RedisServer", "redis_available"]


def redis_available() -> str | None:
    """None when redis-server can be started here, else why not (a skip reason)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (make system-deps installs it as root with apt-get)"
    return None


class RedisServer:
    """``with RedisServer() as redis: redis.url``; nothing persisted, killed on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="proxy-ext-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("redis-server did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
