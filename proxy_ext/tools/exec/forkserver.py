"""The exec tools' fork server: a small, long-lived process that runs each tool call in a sandbox.

Started once by :class:`proxy_ext.tools.exec.ExecToolBackend` as ``python -I -S forkserver.py FD POOL``
in a session of its own (standard library only, so it starts fast and never imports the proxy's
code or sees its environment). Why: forking the proxy itself (hundreds of MiB, many threads) per
call is slow and unsafe, and starting a fresh Python supervisor per call costs tens of milliseconds.

Protocol: the backend sends one end of a fresh ``socketpair`` over the control socket (fd ``FD``, a
SOCK_SEQPACKET socket, one SCM_RIGHTS message per call). No socket path exists, so a sandboxed tool
cannot connect to the server and ask for anything. The server keeps at least POOL *call
supervisors* alive (and at least one idle) waiting on the control socket. A supervisor is a child
subreaper and serves one call at a time, then waits for the next. For a call it:

1. reads one JSON line ``{"executable", "argv", "env", "timeout_s", "max_output_bytes", "limits",
   "uid", "gid", "tmp_base"}`` (HOME, TMPDIR and PWD of the tool are set to its working directory);
2. creates a fresh working directory (owned by the sandbox user, mode 0700), takes on the sandbox
   user's ids, the directory, umask and resource limits itself, and starts the tool with
   ``posix_spawn`` (new process group, stdin from /dev/null, stdout/stderr pipes, the given minimal
   environment);
3. reads stdout/stderr incrementally, keeping at most ``max_output_bytes`` of each and discarding
   the rest, until the tool exits or the timeout expires;
4. kills (SIGKILL) and reaps every remaining descendant until it has no child left — as a subreaper
   it inherits every orphan: ``sleep 100 &``, ``nohup``, ``setsid``, double forks —, becomes root
   again, removes the working directory and answers one JSON line ``{"rc", "stdout", "stderr",
   "timed_out", "truncated", "duration_ms"}`` (or ``{"error": ...}``).

If the backend closes the connection early (the run was cancelled) the supervisor kills the tree
at once. The server is a child subreaper as well: strays of a supervisor that died are killed, and
a supervisor still busy well past its call's deadline (e.g. stopped by its tool) is killed. When
the control socket closes or the proxy dies (PDEATHSIG → SIGTERM) it kills every process below it
and exits.
"""

from __future__ import annotations

import base64
import ctypes
import gc
import json
import os
import resource
import select
import shutil  # imported up front: the sandbox user may not be able to read the stdlib
import signal
import socket
import stat as stat_module
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEADLINE_GRACE_S = 5.0
DRAIN_S = 1.0
NOTIFY_W: int | None = None
"""In a supervisor: the pipe to the server (set by :func:`supervisor`)."""
IDLE_RETIRE_S = 60
MAX_CALLS = 10_000
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
            os.killpg(tool_pid, signal.SIGKILL)  # the tool's own process group, fast path
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
    """Become root again (real, effective, saved) for the clean-up and the next call."""
    if req.get("uid") is not None:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared by the change of credentials
    os.chdir("/")
    os.umask(0o022)


def _make_workdir(req: dict) -> str:
    path = os.path.join(req["tmp_base"], "proxy-ext-exec-" + os.urandom(9).hex())
    os.mkdir(path, 0o700)
    if req.get("uid") is not None:
        os.chown(path, req["uid"], req["gid"])
    return path


def _remove_workdir(path: str) -> None:
    """Remove a call's working directory as far as *the current user* may.

    Called as the sandbox user, never as root on a tree a tool could have shaped: a tool can
    rename its directory and leave a symlink in its place, or plant symlinks inside. rmtree does
    not follow symlinks, and permissions are only ever repaired strictly inside ``path``.
    """
    try:
        os.rmdir(path)  # the common case: the tool left nothing behind
        return
    except OSError:
        pass
    if os.path.islink(path):  # the tool swapped its directory for a symlink: drop the link only
        try:
            os.unlink(path)
        except OSError:
            pass
        return

    def retry(func, target, _exc):  # a tool may have made a subdirectory unwritable
        parent = os.path.dirname(target)
        if parent == path or parent.startswith(path + os.sep):
            try:
                os.chmod(parent, 0o700)
                func(target)
            except OSError:
                pass

    shutil.rmtree(path, onerror=retry)


def remove_workdir_as_owner(path: str) -> None:
    """Remove a working directory left by a supervisor that died: as its owner, in a child."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat_module.S_ISDIR(st.st_mode):
        return
    if os.geteuid() != 0 or st.st_uid == 0:
        _remove_workdir(path)
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(st.st_gid, st.st_gid, st.st_gid)
            os.setresuid(st.st_uid, st.st_uid, st.st_uid)
            _remove_workdir(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    try:
        os.rmdir(path)  # the entry itself, if the owner could not remove it from its parent
    except OSError:
        pass


def run_call(req: dict, conn: socket.socket) -> dict:
    """Run one tool call to completion (or timeout) and clean up; the result dict."""
    max_bytes = int(req["max_output_bytes"])
    timeout_s = float(req["timeout_s"])
    cwd = _make_workdir(req)
    if NOTIFY_W is not None and "\n" not in cwd:
        _notify(NOTIFY_W, f"w {os.getpid()} {cwd}")  # the server removes it if we die
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
        poller.unregister(pidfd)
        poller.unregister(conn.fileno())
        os.close(pidfd)
        # The tool is done (or out of time): nothing it started may outlive the call.
        kill_all_descendants(pid)
        # The writers are dead: read what is left, up to EOF. Bounded, because a tool may have
        # handed its stdout to a process outside this tree (e.g. over a unix socket).
        drain_until = time.monotonic() + DRAIN_S
        while open_fds and time.monotonic() < drain_until:
            for fd, _event in poller.poll(max(1, int((drain_until - time.monotonic()) * 1000))):
                if fd in open_fds:
                    drain(fd)
        os.close(out_r), os.close(err_r), os.close(devnull)
        if status is None:
            rc = -signal.SIGKILL
        elif os.WIFSIGNALED(status):
            rc = -os.WTERMSIG(status)
        else:
            rc = os.WEXITSTATUS(status)
            if req.get("bwrap") and 128 < rc <= 128 + 64:
                rc = 128 - rc  # bwrap reports a tool killed by signal N as exit 128+N, as shells do

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
        _remove_workdir(cwd)  # still as the sandbox user (see _remove_workdir)
        _leave_sandbox(req)
        try:
            os.rmdir(cwd)  # as root: only when the sandbox user may not write the base directory
        except OSError:
            pass


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


def _notify(notify_w: int, message: str) -> None:
    os.write(notify_w, message.encode() + b"\n")  # < PIPE_BUF: atomic, lines never interleave


def _should_retire(req: dict, calls: int) -> bool:
    """Retire after MAX_CALLS calls or well before our own CPU time reaches the limit we carry."""
    cpu_limit = (req.get("limits") or {}).get("RLIMIT_CPU")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return calls >= MAX_CALLS or bool(cpu_limit and usage.ru_utime + usage.ru_stime > cpu_limit / 2)


def handle_call(conn: socket.socket, notify_w: int, calls: int) -> bool:
    """Run the call on ``conn`` and answer it; True when this supervisor should retire now.

    The server hears "finished" (or "retiring") *before* the caller gets the result, so a caller
    that sends its next call at once finds this supervisor counted as idle again.
    """
    me = os.getpid()
    retire = False
    try:
        req = _read_request(conn)
        # The server kills this supervisor (and so the tree) if it is still busy well after the
        # call's deadline, e.g. because the tool stopped it with SIGSTOP.
        deadline = time.monotonic() + float(req["timeout_s"]) + DEADLINE_GRACE_S
        _notify(notify_w, f"d {me} {deadline:.3f}")
        try:
            result = run_call(req, conn)
        except Exception as exc:
            result = {"error": f"sandbox failure: {type(exc).__name__}: {exc}"}
        retire = _should_retire(req, calls)
        _notify(notify_w, f"{'x' if retire else 'f'} {me}")
        try:
            conn.sendall(json.dumps(result).encode() + b"\n")
        except OSError:
            pass  # the caller went away
    except (OSError, ValueError, EOFError, KeyError):
        retire = True  # a broken request (the caller sees the connection close): start afresh
    finally:
        conn.close()
    return retire


def supervisor(control: socket.socket, notify_w: int) -> None:
    """A call supervisor: a child subreaper that serves calls from ``control`` one at a time.

    Supervisors are reused: between calls nothing of a call is left (its tree is killed and
    reaped, its directory removed, ids back to root). The resource limits it took on for its
    first call stay — they come from the config and are the same for every call. It retires after
    ``IDLE_RETIRE_S`` without work, after ``MAX_CALLS`` calls, or when its own CPU time nears the
    CPU limit it carries. Never returns.
    """
    global NOTIFY_W
    NOTIFY_W = notify_w
    code = 0
    try:
        signal.set_wakeup_fd(-1)  # the server's wake-up pipe is not ours to write to
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.enable()
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        me = os.getpid()
        poller = select.poll()
        poller.register(control.fileno(), select.POLLIN)
        calls = 0
        while True:
            if not poller.poll(IDLE_RETIRE_S * 1000):
                return  # idle for long: the server keeps the pool at its size
            try:  # several idle supervisors wake for one message; one gets it
                msg, fds, _flags, _addr = socket.recv_fds(control, 16, 4, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            if not msg and not fds:
                return  # the proxy closed the control socket
            for extra in fds[1:]:
                os.close(extra)
            if not fds:
                continue
            _notify(notify_w, f"t {me}")
            os.set_inheritable(fds[0], False)
            calls += 1
            if handle_call(socket.socket(fileno=fds[0]), notify_w, calls):
                return
    except BaseException:
        code = 1
    finally:
        try:
            _notify(notify_w, f"x {os.getpid()}")
        except OSError:
            pass
        os._exit(code)


def serve(control: socket.socket, pool_size: int) -> None:
    """Keep ``pool_size`` supervisors alive (at least one idle) on ``control``; exit when the proxy
    closes it or dies.

    The server is a child subreaper too, as a backstop: if a supervisor dies abnormally, the tool
    processes it leaves behind are re-parented here and killed (anything that is not one of our
    supervisors is a stray). A supervisor still busy well past its call's deadline is killed.
    """
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    notify_r, notify_w = os.pipe()
    state: dict[int, str] = {}  # pid -> "idle" | "busy" | "gone"
    deadlines: dict[int, float] = {}
    workdirs: dict[int, str] = {}  # busy supervisor -> its call's working directory
    orphan_dirs: list[str] = []  # working directories of supervisors that died

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            os.close(notify_r)
            supervisor(control, notify_w)
        state[pid] = "idle"

    def idle() -> int:
        return sum(1 for s in state.values() if s == "idle")

    def reap_and_kill_strays() -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            state.pop(pid, None)
            deadlines.pop(pid, None)
            if pid in workdirs:
                orphan_dirs.append(workdirs.pop(pid))
        for pid in _children(os.getpid()):
            if pid not in state:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    gc.disable()  # fork children from a quiet heap: fewer shared pages touched (and copied)
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
    poller.register(notify_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
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
            elif fd == notify_r:
                pending += os.read(notify_r, 65536)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    kind, pid_text, *rest = line.decode().split(" ", 2)
                    pid = int(pid_text)
                    if pid not in state:
                        continue
                    if kind == "t":
                        state[pid] = "busy"
                        if idle() == 0:
                            spawn()  # the next call must not wait for a fork
                    elif kind == "d":
                        deadlines[pid] = float(rest[0])
                    elif kind == "w":
                        workdirs[pid] = rest[0]
                    elif kind == "f":
                        state[pid] = "idle"
                        deadlines.pop(pid, None)
                        workdirs.pop(pid, None)
                    elif kind == "x":
                        state[pid] = "gone"
        now = time.monotonic()
        for pid, when in list(deadlines.items()):
            if now > when:
                try:
                    os.kill(pid, signal.SIGKILL)  # its tree is re-parented here and killed below
                except ProcessLookupError:
                    pass
                del deadlines[pid]
        reap_and_kill_strays()
        if orphan_dirs and all(pid in state for pid in _children(os.getpid())):
            for path in orphan_dirs:  # their writers are dead now
                remove_workdir_as_owner(path)
            orphan_dirs.clear()
        while running and (idle() == 0 or sum(1 for s in state.values() if s != "gone") < pool_size):
            spawn()
    # The proxy is gone (or stopping us): no tool may outlive it. Killing the supervisors
    # re-parents their tools here, and the loop kills those too.
    kill_all_descendants(None)
    for path in [*orphan_dirs, *workdirs.values()]:
        remove_workdir_as_owner(path)


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
