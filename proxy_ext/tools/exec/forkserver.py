"""The exec tools' fork server: a small, long-lived process that runs each tool call in a sandbox.

Started once by :class:`proxy_ext.tools.exec.ExecToolBackend` as ``python -I -S forkserver.py FD``
(standard library only, so it starts fast and never imports the proxy's code or sees its
environment). Why a fork server: forking the proxy itself (hundreds of MiB, many threads) per call
is slow and unsafe, and starting a fresh Python supervisor per call costs tens of milliseconds.

Protocol: the backend sends one end of a fresh ``socketpair`` over the control socket (fd ``FD``, a
SOCK_SEQPACKET socket, one SCM_RIGHTS message per call). No socket path exists, so a sandboxed tool
cannot connect to the server and ask for anything. The server forks a *call supervisor* that owns that connection:

1. reads one JSON line ``{"executable", "argv", "env", "timeout_s", "max_output_bytes", "limits",
   "uid", "gid", "tmp_base"}`` (HOME, TMPDIR and PWD of the tool are set to its working directory);
2. becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so every descendant of the tool
   that is orphaned — ``sleep 100 &``, ``nohup``, ``setsid``, double forks — is re-parented to it;
3. creates a fresh temporary working directory (owned by the sandbox user, mode 0700) and forks the
   tool: new session, stdin from /dev/null, stdout/stderr pipes, setrlimit, privileges dropped,
   the given minimal environment, ``execve``;
4. reads stdout/stderr incrementally, keeping at most ``max_output_bytes`` of each and discarding
   the rest, until the tool exits or the timeout expires;
5. kills (SIGKILL) and reaps every remaining descendant until it has no child left, removes the
   working directory and answers one JSON line ``{"rc", "stdout", "stderr", "timed_out",
   "truncated", "duration_ms"}`` (or ``{"error": ...}``).

If the backend closes the connection early (the run was cancelled) the supervisor kills the tree
at once. The server exits when its control socket closes (the proxy went away) and asks the kernel
to kill it if its parent dies.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_REQUEST_BYTES = 4 * 1024 * 1024
READ_CHUNK = 65536

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# ------------------------------------------------------------------------------ process tree


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the supervisor is single-threaded: its only task is ``pid``)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            if len(fields) > 1 and int(fields[1]) == pid:
                found.append(int(entry))
        return found


def kill_all_descendants(tool_pid: int | None) -> int:
    """SIGKILL every descendant and reap it, until this process has no child left.

    As a child subreaper, orphans land here, so killing our children repeatedly reaches the whole
    tree: a killed process's own children are re-parented to us and killed on the next pass.
    Returns how many processes were killed.
    """
    me = os.getpid()
    killed = 0
    if tool_pid is not None:
        try:
            os.killpg(tool_pid, signal.SIGKILL)  # the tool's own session/group, fast path
        except OSError:
            pass
    deadline = time.monotonic() + 10.0
    while True:
        pids = _children(me)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        reaped = False
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return killed  # no child at all (alive or zombie): the tree is gone
            if pid == 0:
                break
            reaped = True
        if not reaped:
            if time.monotonic() > deadline:  # unkillable (e.g. stuck in D state): give up, report
                return killed
            time.sleep(0.0005)


# ------------------------------------------------------------------------------------ the tool


def _exec_tool(req: dict, cwd: str, out_w: int, err_w: int, status_w: int) -> None:
    """In the forked tool process: never returns."""
    try:
        os.setsid()
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)  # ignored signals would survive execve
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.chdir(cwd)
        limits = req.get("limits") or {}
        for name, value in limits.items():
            kind = getattr(resource, name)
            soft, hard = (value, value + 1) if name == "RLIMIT_CPU" else (value, value)
            resource.setrlimit(kind, (soft, hard))  # the kernel sends SIGKILL at the hard CPU limit
        uid, gid = req.get("uid"), req.get("gid")
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        os.closerange(3, status_w)
        os.closerange(status_w + 1, 65536)
        os.umask(0o077)
        env = dict(req["env"], HOME=cwd, TMPDIR=cwd, PWD=cwd)
        os.execve(req["executable"], req["argv"], env)
    except BaseException as exc:  # report why the tool could not start, then die
        try:
            os.write(status_w, f"{type(exc).__name__}: {exc}".encode()[:1000])
        finally:
            os._exit(127)


def _read_status(status_r: int) -> str:
    data = b""
    while True:
        chunk = os.read(status_r, 4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk


def _make_workdir(req: dict) -> str:
    path = tempfile.mkdtemp(prefix="proxy-ext-exec-", dir=req.get("tmp_base") or None)
    if req.get("uid") is not None:
        os.chown(path, req["uid"], req["gid"])
    return path


def _remove_workdir(path: str) -> None:
    def retry(func, target, _exc):  # a tool may have made a subdirectory unwritable
        try:
            os.chmod(os.path.dirname(target), 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def run_call(req: dict, conn: socket.socket) -> dict:
    """Run one tool call to completion (or timeout) and clean up; the result dict."""
    max_bytes = int(req["max_output_bytes"])
    timeout_s = float(req["timeout_s"])
    cwd = _make_workdir(req)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r), os.close(err_r), os.close(status_r)
        _exec_tool(req, cwd, out_w, err_w, status_w)
    os.close(out_w), os.close(err_w), os.close(status_w)
    deadline = started + timeout_s
    try:
        start_error = _read_status(status_r)
        os.close(status_r)
        if start_error:
            kill_all_descendants(pid)
            os.close(out_r), os.close(err_r)
            return {"error": f"could not start {req['argv'][0]!r}: {start_error}"}

        kept = {out_r: bytearray(), err_r: bytearray()}
        total = {out_r: 0, err_r: 0}
        open_fds = {out_r, err_r}
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, err_r):
            poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        poller.register(conn.fileno(), select.POLLIN)  # readable/HUP: the caller gave up

        def drain(fd: int) -> None:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                return
            total[fd] += len(chunk)
            room = max_bytes - len(kept[fd])
            if room > 0:
                kept[fd] += chunk[:room]  # beyond the cap the bytes are dropped, never buffered

        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        timed_out = cancelled = False
        status = None
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
                elif fd in open_fds:
                    drain(fd)
            if cancelled:
                break
        duration_ms = (time.monotonic() - started) * 1000
        os.close(pidfd)
        # The tool is done (or out of time): nothing it started may outlive the call.
        kill_all_descendants(pid)
        for fd in list(open_fds):  # writers are dead: read what is left up to EOF
            while fd in open_fds:
                drain(fd)
        os.close(out_r), os.close(err_r)
        if status is None:
            rc = -signal.SIGKILL
        elif os.WIFSIGNALED(status):
            rc = -os.WTERMSIG(status)
        else:
            rc = os.WEXITSTATUS(status)
        return {
            "rc": rc,
            "stdout": kept[out_r].decode(errors="replace"),
            "stderr": kept[err_r].decode(errors="replace"),
            "timed_out": timed_out,
            "truncated": total[out_r] > max_bytes or total[err_r] > max_bytes,
            "duration_ms": round(duration_ms, 3),
            **({"cancelled": True} if cancelled else {}),
        }
    finally:
        kill_all_descendants(None)
        _remove_workdir(cwd)


def _read_request(conn: socket.socket) -> dict:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError("connection closed before the request was complete")
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
    return json.loads(data)


def call_supervisor(conn: socket.socket) -> None:
    """In the forked per-call supervisor: never returns."""
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        req = _read_request(conn)
        try:
            result = run_call(req, conn)
        except Exception as exc:
            result = {"error": f"sandbox failure: {type(exc).__name__}: {exc}"}
        try:
            conn.sendall(json.dumps(result).encode() + b"\n")
        except OSError:
            pass  # the caller went away
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def serve(control: socket.socket) -> None:
    """Accept connections passed over ``control`` and fork a call supervisor for each."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished supervisors
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(control, 16, 4)
        except InterruptedError:
            continue
        if not msg and not fds:
            return  # the proxy closed the control socket
        for fd in fds:
            conn = socket.socket(fileno=fd)
            pid = os.fork()
            if pid == 0:
                control.close()
                call_supervisor(conn)
            conn.close()


def main(argv: list[str]) -> int:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    control = socket.socket(fileno=int(argv[1]))
    if os.getppid() == 1:  # the parent died before PDEATHSIG was armed
        return 0
    serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
