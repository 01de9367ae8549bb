"""The exec tools' fork server: a small, long-lived process that runs each tool call in a sandbox.

Started once by :class:`proxy_ext.tools.exec.ExecToolBackend` as ``python -I -S forkserver.py FD POOL``
(standard library only, so it starts fast and never imports the proxy's code or sees its
environment). Why a fork server: forking the proxy itself (hundreds of MiB, many threads) per call
is slow and unsafe, and starting a fresh Python supervisor per call costs tens of milliseconds.

Protocol: the backend sends one end of a fresh ``socketpair`` over the control socket (fd ``FD``, a
SOCK_SEQPACKET socket, one SCM_RIGHTS message per call). No socket path exists, so a sandboxed tool
cannot connect to the server and ask for anything. The server keeps POOL pre-forked *call
supervisors* waiting on the control socket, each already a child subreaper, and forks a replacement
as soon as one is taken (so no fork sits on a call's critical path). The supervisor that receives
the connection:

1. reads one JSON line ``{"executable", "argv", "env", "timeout_s", "max_output_bytes", "limits",
   "uid", "gid", "tmp_base"}`` (HOME, TMPDIR and PWD of the tool are set to its working directory);
2. is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so every descendant of the tool
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
at once. The server is a child subreaper as well: strays of a supervisor that died are killed. When
its control socket closes or its parent dies (PDEATHSIG → SIGTERM) it kills every process below it
and exits.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEADLINE_GRACE_S = 5.0
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


_SIGNALS_TO_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGXCPU, signal.SIGCHLD, signal.SIGINT,
                     signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def _spawn_tool(req: dict, cwd: str, out_w: int, err_w: int) -> int:
    """Start the tool with posix_spawn (vfork: no page-table copy); its pid. Raises OSError.

    This supervisor has already become the sandbox user, entered ``cwd``, set the umask and the
    resource limits (see :func:`_enter_sandbox`), so the child inherits all of that. posix_spawn
    adds a new session, stdin from /dev/null, stdout/stderr to our pipes, default signal
    dispositions and an empty signal mask; every other descriptor is close-on-exec.
    """
    env = dict(req["env"], HOME=cwd, TMPDIR=cwd, PWD=cwd)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    return os.posix_spawn(req["executable"], req["argv"], env, file_actions=actions, setsid=True,
                          setsigdef=_SIGNALS_TO_RESET, setsigmask=())


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
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, 0)
        os.setresuid(uid, uid, 0)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the change of credentials
    os.chdir(cwd)
    os.umask(0o077)
    signal.signal(signal.SIGXCPU, lambda *_: None)
    for name, value in (req.get("limits") or {}).items():
        soft, hard = (value, value + 1) if name == "RLIMIT_CPU" else (value, value)
        resource.setrlimit(getattr(resource, name), (soft, hard))  # at the hard CPU limit: SIGKILL


def _leave_sandbox(req: dict) -> None:
    """Become root again (real, effective, saved) for the clean-up, when we dropped privileges."""
    if req.get("uid") is not None:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)
    os.chdir("/")


def _make_workdir(req: dict) -> str:
    path = os.path.join(req["tmp_base"], "proxy-ext-exec-" + os.urandom(9).hex())
    os.mkdir(path, 0o700)
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

    try:
        os.rmdir(path)  # the common case: the tool left nothing behind
    except OSError:
        import shutil  # imported here: keeps the fork server small (and random's at-fork hook out)

        shutil.rmtree(path, onerror=retry)


def run_call(req: dict, conn: socket.socket) -> dict:
    """Run one tool call to completion (or timeout) and clean up; the result dict."""
    max_bytes = int(req["max_output_bytes"])
    timeout_s = float(req["timeout_s"])
    cwd = _make_workdir(req)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        try:
            _enter_sandbox(req, cwd)
            pid = _spawn_tool(req, cwd, out_w, err_w)
        except (OSError, ValueError) as exc:
            os.close(out_r), os.close(err_r)
            return {"error": f"could not start {req['argv'][0]!r}: {type(exc).__name__}: {exc}"}
        finally:
            os.close(out_w), os.close(err_w)

        devnull = os.open(os.devnull, os.O_WRONLY)
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
            room = max_bytes - len(kept[fd])
            try:
                if room > 0:
                    chunk = os.read(fd, READ_CHUNK)
                    count = len(chunk)
                    kept[fd] += chunk[:room]
                else:  # beyond the cap: discarded in the kernel, never copied or buffered here
                    count = os.splice(fd, devnull, 1 << 20)
            except BlockingIOError:
                return
            if not count:
                poller.unregister(fd)
                open_fds.discard(fd)
                return
            total[fd] += count

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
        _leave_sandbox(req)
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


def call_supervisor(conn: socket.socket, taken_w: int) -> None:
    """Run the call on ``conn`` in this (already subreaping) supervisor: never returns."""
    code = 0
    try:
        req = _read_request(conn)
        # The server kills this supervisor (and so the tree) if it is still alive well after the
        # call's deadline, e.g. because the tool stopped it with SIGSTOP.
        deadline = time.monotonic() + float(req["timeout_s"]) + DEADLINE_GRACE_S
        os.write(taken_w, f"d {os.getpid()} {deadline:.3f}\n".encode())
        os.close(taken_w)
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


def idle_supervisor(control: socket.socket, taken_w: int) -> None:
    """A pre-forked supervisor: wait for one call on ``control``, tell the server, run it. Never returns.

    Pre-forking keeps the fork (and a scheduling hop) off the call's critical path: the proxy's
    message wakes a supervisor that is already a subreaper.
    """
    try:
        signal.set_wakeup_fd(-1)  # the server's wake-up pipe is not ours to write to
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(control, 16, 4)
                break
            except InterruptedError:
                continue
        os.write(taken_w, b"t\n")  # the server forks a replacement
        control.close()
        if not fds:
            os._exit(0)  # the proxy closed the control socket
        for extra in fds[1:]:
            os.close(extra)
        os.set_inheritable(fds[0], False)
        call_supervisor(socket.socket(fileno=fds[0]), taken_w)
    finally:
        os._exit(1)


def serve(control: socket.socket, pool_size: int) -> None:
    """Keep ``pool_size`` idle supervisors waiting on ``control``; exit when the proxy closes it.

    The server is a child subreaper too, as a backstop: if a supervisor dies abnormally, the tool
    processes it leaves behind are re-parented here and killed (anything that is not one of our
    supervisors is a stray).
    """
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    taken_r, taken_w = os.pipe()
    supervisors: set[int] = set()

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            os.close(taken_r)
            idle_supervisor(control, taken_w)
        supervisors.add(pid)

    def reap_and_kill_strays() -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            supervisors.discard(pid)
        for pid in _children(os.getpid()):
            if pid not in supervisors:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    gc.disable()  # short-lived children: no collector passes touching (and copying) shared pages
    gc.freeze()
    for _ in range(pool_size):
        spawn()
    # SIGTERM (sent by the kernel when the proxy dies, see main) only wakes the loop below: a
    # handler that raised could interrupt the clean-up.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: None)
    poller = select.poll()
    poller.register(control.fileno(), 0)  # POLLHUP only: the supervisors read the messages
    poller.register(taken_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    deadlines: dict[int, float] = {}
    pending = b""
    running = True
    while running:
        try:
            events = poller.poll(1000)
        except InterruptedError:
            continue
        for fd, event in events:
            if fd == wake_r or (fd == control.fileno() and event & (select.POLLHUP | select.POLLERR)):
                running = False
            elif fd == taken_r:
                pending += os.read(taken_r, 4096)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line == b"t":  # a supervisor took a call: keep the pool full
                        spawn()
                    elif line.startswith(b"d "):  # its deadline
                        _, pid, when = line.split()
                        deadlines[int(pid)] = float(when)
        now = time.monotonic()
        for pid, when in list(deadlines.items()):
            if pid not in supervisors:
                del deadlines[pid]
            elif now > when:
                try:
                    os.kill(pid, signal.SIGKILL)  # its tree is re-parented here and killed below
                except ProcessLookupError:
                    pass
                del deadlines[pid]
        reap_and_kill_strays()
    # The proxy is gone (or stopping us): no tool may outlive it. Killing the supervisors
    # re-parents their tools here, and the loop kills those too.
    kill_all_descendants(None)


def main(argv: list[str]) -> int:
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the proxy died: clean up (see serve)
    control = socket.socket(fileno=int(argv[1]))
    pool_size = int(argv[2]) if len(argv) > 2 else 2
    if os.getppid() == 1:  # the parent died before PDEATHSIG was armed
        return 0
    serve(control, pool_size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
