"""A real ``redis-server`` process on a free loopback port, for the tests of Redis-backed features
(`make system-deps` installs the Debian package where it is missing).

Outages are real too: :meth:`RedisServer.stop` kills it (the port refuses connections),
:meth:`RedisServer.start` brings it back on the same port — empty, as a Redis without persistence
comes back, or with its data when ``persist=True`` (append-only file, fsync on every write) —
and :meth:`RedisServer.pause` / :meth:`RedisServer.resume` hang it (``SIGSTOP``: connections are
accepted by the kernel, nothing ever answers).
"""

from __future__ import annotations

import os
import shutil
import signal
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
    """``with RedisServer() as redis: redis.url``; killed on exit (nothing persisted unless ``persist``)."""

    def __init__(self, persist: bool = False) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="proxy-ext-redis-")
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        """Start (or start again, on the same port) and wait until it answers PING."""
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *durability,
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
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Kill it (SIGKILL: a crash; with ``persist`` every acknowledged write is on disk)."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """Hang it: the process stops (SIGSTOP) with its socket open."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
