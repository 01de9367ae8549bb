"""One tool call in a fork server's call supervisor (see :mod:`forkserver`): enter the sandbox,
start the tool, collect its output within the caps until it exits, times out or is cancelled, and
leave nothing behind.

Standard library only, like the fork server (loaded by path when it runs as a script).
"""

from __future__ import annotations

import base64
import os
import resource
import select
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:
    from .forkserver_tree import PR_SET_PDEATHSIG, kill_all_descendants, make_workdir, prctl, remove_workdir
else:  # run by the fork server script (python -I -S forkserver.py): its siblings by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from forkserver_tree import PR_SET_PDEATHSIG, kill_all_descendants, make_workdir, prctl, remove_workdir

__all__ = ["DRAIN_S", "READ_CHUNK", "run_call"]

DRAIN_S = 1.0
READ_CHUNK = 65536


# ------------------------------------------------------------------------------------ the sandbox


_SIGNALS_TO_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGXCPU, signal.SIGCHLD, signal.SIGINT,
                     signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _bwrap_argv(req: dict, cwd: str, seccomp_fd: int | None) -> list[str]:
    """The bwrap command line of a call: the proxy's static view (``mounts``), the network
    namespace unless the tool may use the network, the working directory, the seccomp program."""
    isolate = req["bwrap"]
    argv = [isolate["path"], *isolate["mounts"]]
    if not isolate.get("network"):
        argv.append("--unshare-net")
    argv += ["--bind", cwd, cwd, "--remount-ro", "/", "--chdir", cwd]  # only cwd and /tmp are writable
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return [*argv, "--", req["executable"], *req["argv"][1:]]


def _seccomp_fd(req: dict) -> int | None:
    """A pipe holding the call's seccomp program for bwrap to read (inheritable), or None."""
    program = (req.get("bwrap") or {}).get("seccomp")
    if not program:
        return None
    data = base64.b64decode(program)
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)  # a few hundred bytes: far below the pipe's capacity
    finally:
        os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


def _spawn_tool(req: dict, cwd: str, out_w: int, err_w: int) -> int:
    """Start the tool with posix_spawn (vfork: no page-table copy); its pid. Raises OSError.

    This supervisor has already become the sandbox user, entered ``cwd``, set the umask and the
    resource limits (see :func:`_enter_sandbox`), so the child inherits all of that. posix_spawn
    adds a new process group, stdin from /dev/null, stdout/stderr to our pipes, default signal
    dispositions and an empty signal mask; every other descriptor is close-on-exec. With
    ``bwrap`` in the request the tool starts inside bubblewrap's namespaces (see isolation.py).

    A process group, not a new session: the fork server already runs in a session of its own
    without a controlling terminal, and a session per call would also put every call in a new
    scheduler autogroup, which makes tools several times slower on a busy machine.
    """
    env = dict(req["env"], HOME=cwd, TMPDIR=cwd, PWD=cwd)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    executable, argv = req["executable"], req["argv"]
    seccomp_fd = _seccomp_fd(req) if req.get("bwrap") else None
    try:
        if req.get("bwrap"):
            argv = _bwrap_argv(req, cwd, seccomp_fd)
            executable = argv[0]
        return os.posix_spawn(executable, argv, env, file_actions=actions, setpgroup=0,
                              setsigdef=_SIGNALS_TO_RESET, setsigmask=())
    finally:
        if seccomp_fd is not None:
            os.close(seccomp_fd)


def _enter_sandbox(req: dict, cwd: str) -> None:
    """Turn this disposable supervisor into the tool's environment, so the tool inherits it.

    - identity: real and effective ids become the sandbox user, no supplementary groups; the *saved*
      ids stay root, so the supervisor can become root again to clean up (see _leave_sandbox),
      while the tool, whose saved ids become its effective ones at execve, cannot. The tool can
      signal its supervisor (same real uid); if it kills or stops it, the fork server kills the
      orphaned tree (backstop and per-call deadline). It cannot ptrace it (the saved uid differs).
    - working directory and umask;
    - resource limits. (Setting them on the tool afterwards with prlimit() would leave a window,
      and a preexec hook would run Python between fork and exec.) The supervisor stays within
      them: it allocates little, writes no files, and its CPU time counts separately from the
      tool's. It catches SIGXCPU (a handler is reset by execve, so the tool still gets the default
      action) and discards overflow output with splice(), which costs almost no CPU.
    """
    uid, gid = req.get("uid"), req.get("gid")
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, 0)
        os.setresuid(uid, uid, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the change of credentials
    os.chdir(cwd)
    os.umask(0o077)
    signal.signal(signal.SIGXCPU, lambda *_: None)
    for name, value in (req.get("limits") or {}).items():
        soft, hard = (value, value + 1) if name == "RLIMIT_CPU" else (value, value)
        resource.setrlimit(getattr(resource, name), (soft, hard))  # at the hard CPU limit: SIGKILL


def _leave_sandbox(req: dict) -> None:
    """Become root again (real, effective, saved) for the clean-up and the next call."""
    if req.get("uid") is not None:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the change of credentials
    os.chdir("/")
    os.umask(0o022)


# --------------------------------------------------------------------------------------- the call


class _Output:
    """The tool's stdout and stderr pipes: at most ``max_bytes`` of each kept, the rest discarded."""

    def __init__(self, out_r: int, err_r: int, max_bytes: int, poller: select.poll) -> None:
        self.out_r, self.err_r, self.max_bytes, self.poller = out_r, err_r, max_bytes, poller
        self.devnull = os.open(os.devnull, os.O_WRONLY)
        self.kept = {out_r: bytearray(), err_r: bytearray()}
        self.total = {out_r: 0, err_r: 0}
        self.open_fds = {out_r, err_r}
        for fd in (out_r, err_r):
            poller.register(fd, select.POLLIN)
            os.set_blocking(fd, False)

    def drain(self, fd: int) -> None:
        room = self.max_bytes - len(self.kept[fd])
        try:
            if room > 0:
                chunk = os.read(fd, READ_CHUNK)
                count = len(chunk)
                self.kept[fd] += chunk[:room]
            else:  # beyond the cap: discarded in the kernel, never copied or buffered here
                count = os.splice(fd, self.devnull, 1 << 20)
        except BlockingIOError:
            return
        if not count:
            self.poller.unregister(fd)
            self.open_fds.discard(fd)
            return
        self.total[fd] += count

    def drain_rest(self) -> None:
        """The writers are dead: read what is left, up to EOF. Bounded, because a tool may have
        handed its stdout to a process outside this tree (e.g. over a unix socket)."""
        drain_until = time.monotonic() + DRAIN_S
        while self.open_fds and time.monotonic() < drain_until:
            for fd, _event in self.poller.poll(max(1, int((drain_until - time.monotonic()) * 1000))):
                if fd in self.open_fds:
                    self.drain(fd)

    def close(self) -> None:
        for fd in (self.out_r, self.err_r, self.devnull):
            os.close(fd)

    def text(self, fd: int) -> str:
        return self.kept[fd].decode(errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total[self.out_r] > self.max_bytes or self.total[self.err_r] > self.max_bytes


def _wait(pid: int, conn: socket.socket, output: _Output, deadline: float) -> tuple[int | None, bool, bool]:
    """Collect output until the tool exits, the deadline passes or the caller gives up (its
    connection becomes readable or hangs up): ``(wait status or None, timed_out, cancelled)``."""
    poller = output.poller
    pidfd = os.pidfd_open(pid)
    poller.register(pidfd, select.POLLIN)
    poller.register(conn.fileno(), select.POLLIN)  # readable/HUP: the caller gave up
    timed_out = cancelled = False
    status = None
    try:
        while status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            for fd, _event in poller.poll(max(1, int(remaining * 1000))):
                if fd == pidfd:
                    _, status = os.waitpid(pid, 0)
                elif fd == conn.fileno():
                    cancelled = True
                elif fd in output.open_fds:
                    output.drain(fd)
            if cancelled:
                break
    finally:
        poller.unregister(pidfd)
        poller.unregister(conn.fileno())
        os.close(pidfd)
    return status, timed_out, cancelled


def _exit_code(req: dict, status: int | None) -> int:
    if status is None:
        return -signal.SIGKILL
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    rc = os.WEXITSTATUS(status)
    if req.get("bwrap") and 128 < rc <= 128 + 64:
        rc = 128 - rc  # bwrap reports a tool killed by signal N as exit 128+N, as shells do
    return rc


def run_call(req: dict, conn: socket.socket, notify_w: int | None = None) -> dict:
    """Run one tool call to completion (or timeout) and clean up; the result dict.

    ``notify_w``: the supervisor's pipe to the server, told the working directory so that the
    server removes it if this supervisor dies.
    """
    max_bytes = int(req["max_output_bytes"])
    timeout_s = float(req["timeout_s"])
    cwd = make_workdir(req)
    if notify_w is not None and "\n" not in cwd:
        os.write(notify_w, f"w {os.getpid()} {cwd}".encode() + b"\n")  # < PIPE_BUF: atomic
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.monotonic()
    try:
        try:
            _enter_sandbox(req, cwd)
            pid = _spawn_tool(req, cwd, out_w, err_w)
        except (OSError, ValueError) as exc:
            os.close(out_r)
            os.close(err_r)
            return {"error": f"could not start {req['argv'][0]!r}: {type(exc).__name__}: {exc}"}
        finally:
            os.close(out_w)
            os.close(err_w)
        output = _Output(out_r, err_r, max_bytes, select.poll())
        status, timed_out, cancelled = _wait(pid, conn, output, started + timeout_s)
        duration_ms = (time.monotonic() - started) * 1000
        # The tool is done (or out of time): nothing it started may outlive the call.
        kill_all_descendants(pid)
        output.drain_rest()
        output.close()
        return {
            "rc": _exit_code(req, status),
            "stdout": output.text(out_r),
            "stderr": output.text(err_r),
            "timed_out": timed_out,
            "truncated": output.truncated,
            "duration_ms": round(duration_ms, 3),
            **({"cancelled": True} if cancelled else {}),
        }
    finally:
        kill_all_descendants(None)
        remove_workdir(cwd)  # still as the sandbox user (see remove_workdir)
        _leave_sandbox(req)
        try:
            os.rmdir(cwd)  # as root: only when the sandbox user may not write the base directory
        except OSError:
            pass
