"""The proxy side of the exec sandbox: starts the fork server once and runs calls through it."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy_ext.config import ExecToolConfig

__all__ = ["ExecOutcome", "Sandbox", "SandboxError", "SandboxUser", "dir_usable_by", "find_python", "resolve_user", "usable_by"]

FORKSERVER = Path(__file__).with_name("forkserver.py")


class SandboxError(RuntimeError):
    """The sandbox itself could not run the call (not: the tool failed)."""


@dataclass(frozen=True)
class SandboxUser:
    """Who tool processes run as (uid None: the proxy's own user)."""

    uid: int | None
    gid: int | None
    name: str


@dataclass(frozen=True)
class ExecOutcome:
    """What one sandboxed process did."""

    rc: int
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"rc": self.rc, "stdout": self.stdout, "stderr": self.stderr, "timed_out": self.timed_out,
                "truncated": self.truncated, "duration_ms": self.duration_ms}


def resolve_user(config: ExecToolConfig) -> SandboxUser:
    """The sandbox user: ``run_as_user`` when the proxy is root, else the proxy's user."""
    if os.geteuid() != 0 or not config.run_as_user:
        return SandboxUser(None, None, pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else str(os.geteuid()))
    try:
        entry = pwd.getpwnam(config.run_as_user)
    except KeyError:
        raise SandboxError(f"tools.exec.run_as_user {config.run_as_user!r} does not exist on this system") from None
    return SandboxUser(entry.pw_uid, entry.pw_gid, entry.pw_name)


def dir_usable_by(path: str, user: SandboxUser) -> bool:
    """Can ``user`` reach directory ``path`` (search permission on it and every parent)?"""
    if user.uid is None:
        return os.access(path, os.X_OK)
    try:
        real = Path(os.path.realpath(path))
        for directory in [*reversed(list(real.parents)), real]:
            st = os.stat(directory)
            bits = st.st_mode >> 6 if st.st_uid == user.uid else st.st_mode >> 3 if st.st_gid == user.gid else st.st_mode
            if not bits & 1:
                return False
    except OSError:
        return False
    return True


def usable_by(path: str, user: SandboxUser, mode: int = os.X_OK) -> bool:
    """Can ``user`` reach ``path`` (search on every parent directory) and access it with ``mode``?"""
    if user.uid is None:
        return os.access(path, mode)
    uid, gids = user.uid, {user.gid}

    def allowed(st: os.stat_result, want: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & (want << 6))
        if st.st_gid in gids:
            return bool(st.st_mode & (want << 3))
        return bool(st.st_mode & want)

    try:
        real = os.path.realpath(path)
        parts = Path(real).parents
        for parent in reversed(list(parts)):
            if not allowed(os.stat(parent), 1):
                return False
        st = os.stat(real)
    except OSError:
        return False
    want = (4 if mode & os.R_OK else 0) | (2 if mode & os.W_OK else 0) | (1 if mode & os.X_OK else 0)
    return stat.S_ISREG(st.st_mode) and all(allowed(st, bit) for bit in (4, 2, 1) if want & bit)


class Sandbox:
    """One fork server per backend; :meth:`run` is safe to call concurrently from any event loop."""

    def __init__(self, config: ExecToolConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    # -------------------------------------------------------------------------- fork server

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(FORKSERVER), str(child.fileno()), str(self.config.idle_supervisors)],
                pass_fds=[child.fileno()],
                env={"PATH": self.config.path},  # the server never holds the proxy's secrets
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # no controlling terminal for any tool; one autogroup for all
            )
        finally:
            child.close()
        self._control = parent

    def _send(self, conn: socket.socket) -> None:
        with self._lock:
            for attempt in (1, 2):
                if self._control is None or self._process is None or self._process.poll() is not None:
                    self._stop_locked()
                    self._start()
                assert self._control is not None
                try:
                    socket.send_fds(self._control, [b"c"], [conn.fileno()])
                    return
                except OSError:
                    self._stop_locked()  # the server died: start a new one once
                    if attempt == 2:
                        raise

    def _stop_locked(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def close(self) -> None:
        """Stop the fork server (calls in flight finish; their supervisors are separate processes)."""
        with self._lock:
            self._stop_locked()

    @property
    def server_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ---------------------------------------------------------------------------------- calls

    def limits(self, user: SandboxUser) -> dict[str, int]:
        """setrlimit values for the tool. RLIMIT_NPROC counts every process of a user, so it is set
        only when tools run as the dedicated sandbox user (for the proxy's own user it would count
        the proxy's threads too)."""
        limits = self.config.limits
        values = {
            "RLIMIT_CPU": limits.cpu_s,
            "RLIMIT_AS": limits.memory_mb * 1024 * 1024,
            "RLIMIT_FSIZE": limits.file_size_mb * 1024 * 1024,
            "RLIMIT_NOFILE": limits.open_files,
            "RLIMIT_CORE": 0,
        }
        if user.uid is not None:
            values["RLIMIT_NPROC"] = limits.max_processes
        return values

    def environment(self) -> dict[str, str]:
        """The tool's environment: the allowlisted variables and PATH, nothing else."""
        env = {name: os.environ[name] for name in self.config.env_allowlist if name in os.environ}
        env["PATH"] = self.config.path
        return env

    async def run(self, executable: str, argv: list[str], timeout_s: float, user: SandboxUser,
                  isolate: dict[str, Any] | None = None) -> ExecOutcome:
        """Run ``argv`` in the sandbox (inside bwrap when ``isolate`` is given, see
        :meth:`Isolation.request`); raises :class:`SandboxError` when the sandbox fails."""
        request = {
            "bwrap": isolate,
            "executable": executable,
            "argv": argv,
            "env": self.environment(),
            "timeout_s": timeout_s,
            "kill_grace_s": self.config.kill_grace_s,
            "max_output_bytes": self.config.max_output_bytes,
            "limits": self.limits(user),
            "uid": user.uid,
            "gid": user.gid,
            "tmp_base": self.config.tmp_dir or tempfile.gettempdir(),
        }
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._send(theirs)
        except OSError as exc:
            ours.close()
            raise SandboxError(f"the exec sandbox could not start ({exc})") from None
        finally:
            theirs.close()
        # A JSON line with two capped streams; escaping may grow each byte up to 6 characters.
        limit = 12 * self.config.max_output_bytes + 65536
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=limit)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), timeout_s + self.config.kill_grace_s)
            except asyncio.TimeoutError:
                raise SandboxError("the exec sandbox did not answer in time") from None
        finally:
            writer.close()  # on cancellation the supervisor sees the close and kills the tree
        if not line:
            raise SandboxError("the exec sandbox ended the call without a result")
        result = json.loads(line)
        if "error" in result:
            raise SandboxError(result["error"])
        return ExecOutcome(rc=result["rc"], stdout=result["stdout"], stderr=result["stderr"], timed_out=result["timed_out"],
                           truncated=result["truncated"], duration_ms=result["duration_ms"])


def find_python(config: ExecToolConfig, user: SandboxUser) -> str | None:
    """The interpreter for exec_python that the sandbox user can run (None: none found)."""
    if config.python_executable:
        found = shutil.which(config.python_executable, path=config.path) if os.sep not in config.python_executable else config.python_executable
        return found if found and usable_by(found, user) else None
    candidates = [os.path.realpath(sys.executable), shutil.which("python3", path=config.path)]
    for candidate in candidates:
        if candidate and usable_by(candidate, user):
            return candidate
    return None
