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

The code: this script (supervisors and the server), ``forkserver_call.py`` (one call in the
sandbox) and ``forkserver_tree.py`` (the process tree, working directories); standard library
only, the two siblings loaded by path.
"""

from __future__ import annotations

import array
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:
    from .forkserver_call import run_call
    from .forkserver_tree import (PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, children, kill_all_descendants,
                                  prctl, remove_workdir_as_owner)
else:  # run as a script (python -I -S forkserver.py, no sys.path entry for it): its siblings by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from forkserver_call import run_call
    from forkserver_tree import (PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, children, kill_all_descendants,
                                 prctl, remove_workdir_as_owner)

__all__ = ["handle_call", "main", "receive_call", "serve", "supervisor"]

MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEADLINE_GRACE_S = 5.0
IDLE_RETIRE_S = 60
MAX_CALLS = 10_000


# ------------------------------------------------------------------------------ call supervisors


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
        deadline = time.monotonic() + float(req["timeout_s"]) + float(req.get("kill_grace_s", DEADLINE_GRACE_S))
        _notify(notify_w, f"d {me} {deadline:.3f}")
        try:
            result = run_call(req, conn, notify_w)
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


def receive_call(control: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors it carries from ``control``, without waiting: raises
    BlockingIOError when there is none (another idle supervisor took it).

    Not ``socket.recv_fds``: Python 3.11's ignores its flags, so every supervisor that lost the race
    for a message blocked in ``recvmsg`` for good and the pool never shrank back to its size.
    """
    fds = array.array("i")
    msg, ancdata, _flags, _addr = control.recvmsg(16, socket.CMSG_LEN(4 * fds.itemsize), socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


def supervisor(control: socket.socket, notify_w: int) -> None:
    """A call supervisor: a child subreaper that serves calls from ``control`` one at a time.

    Supervisors are reused: between calls nothing of a call is left (its tree is killed and
    reaped, its directory removed, ids back to root). The resource limits it took on for its
    first call stay — they come from the config and are the same for every call. It retires after
    ``IDLE_RETIRE_S`` without work, after ``MAX_CALLS`` calls, or when its own CPU time nears the
    CPU limit it carries. Never returns.
    """
    code = 0
    try:
        signal.set_wakeup_fd(-1)  # the server's wake-up pipe is not ours to write to
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.enable()
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        me = os.getpid()
        poller = select.poll()
        poller.register(control.fileno(), select.POLLIN)
        calls = 0
        while True:
            if not poller.poll(IDLE_RETIRE_S * 1000):
                return  # idle for long: the server keeps the pool at its size
            try:  # several idle supervisors wake for one message; one gets it
                msg, fds = receive_call(control)
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


# ------------------------------------------------------------------------------------ the server


class _Pool:
    """The server's view of its call supervisors, kept from their notices on the notify pipe."""

    def __init__(self, control: socket.socket, pool_size: int) -> None:
        self.control, self.pool_size = control, pool_size
        self.notify_r, self.notify_w = os.pipe()
        self.state: dict[int, str] = {}  # pid -> "idle" | "busy" | "gone"
        self.deadlines: dict[int, float] = {}
        self.workdirs: dict[int, str] = {}  # busy supervisor -> its call's working directory
        self.orphan_dirs: list[str] = []  # working directories of supervisors that died
        self.pending = b""

    def spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            os.close(self.notify_r)
            supervisor(self.control, self.notify_w)
        self.state[pid] = "idle"

    def idle(self) -> int:
        return sum(1 for s in self.state.values() if s == "idle")

    def read_notices(self) -> None:
        self.pending += os.read(self.notify_r, 65536)
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            kind, pid_text, *rest = line.decode().split(" ", 2)
            pid = int(pid_text)
            if pid not in self.state:
                continue
            if kind == "t":
                self.state[pid] = "busy"
                if self.idle() == 0:
                    self.spawn()  # the next call must not wait for a fork
            elif kind == "d":
                self.deadlines[pid] = float(rest[0])
            elif kind == "w":
                self.workdirs[pid] = rest[0]
            elif kind == "f":
                self.state[pid] = "idle"
                self.deadlines.pop(pid, None)
                self.workdirs.pop(pid, None)
            elif kind == "x":
                self.state[pid] = "gone"

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, when in list(self.deadlines.items()):
            if now > when:
                try:
                    os.kill(pid, signal.SIGKILL)  # its tree is re-parented here and killed below
                except ProcessLookupError:
                    pass
                del self.deadlines[pid]

    def reap_and_kill_strays(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.state.pop(pid, None)
            self.deadlines.pop(pid, None)
            if pid in self.workdirs:
                self.orphan_dirs.append(self.workdirs.pop(pid))
        for pid in children(os.getpid()):
            if pid not in self.state:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.orphan_dirs and all(pid in self.state for pid in children(os.getpid())):
            for path in self.orphan_dirs:  # their writers are dead now
                remove_workdir_as_owner(path)
            self.orphan_dirs.clear()

    def top_up(self) -> None:
        while self.idle() == 0 or sum(1 for s in self.state.values() if s != "gone") < self.pool_size:
            self.spawn()

    def shutdown(self) -> None:
        # The proxy is gone (or stopping us): no tool may outlive it. Killing the supervisors
        # re-parents their tools here, and the loop kills those too.
        kill_all_descendants(None)
        for path in [*self.orphan_dirs, *self.workdirs.values()]:
            remove_workdir_as_owner(path)


def serve(control: socket.socket, pool_size: int) -> None:
    """Keep ``pool_size`` supervisors alive (at least one idle) on ``control``; exit when the proxy
    closes it or dies.

    The server is a child subreaper too, as a backstop: if a supervisor dies abnormally, the tool
    processes it leaves behind are re-parented here and killed (anything that is not one of our
    supervisors is a stray). A supervisor still busy well past its call's deadline is killed.
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    pool = _Pool(control, pool_size)
    gc.disable()  # fork children from a quiet heap: fewer shared pages touched (and copied)
    gc.freeze()
    for _ in range(pool_size):
        pool.spawn()
    # SIGTERM (sent by the kernel when the proxy dies, see main) only wakes the loop below: a
    # handler that raised could interrupt the clean-up.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGTERM, lambda *_: None)
    poller = select.poll()
    poller.register(control.fileno(), 0)  # POLLHUP only: the supervisors read the messages
    poller.register(pool.notify_r, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    running = True
    while running:
        try:
            events = poller.poll(1000)
        except InterruptedError:
            continue
        for fd, event in events:
            if fd == wake_r or (fd == control.fileno() and event & (select.POLLHUP | select.POLLERR)):
                running = False
            elif fd == pool.notify_r:
                pool.read_notices()
        pool.kill_overdue()
        pool.reap_and_kill_strays()
        if running:
            pool.top_up()
    pool.shutdown()


def main(argv: list[str]) -> int:
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the proxy died: clean up (see serve)
    control = socket.socket(fileno=int(argv[1]))
    # Inherited through pass_fds, so inheritable: no tool may hold it (it could take other calls'
    # connections off it).
    os.set_inheritable(control.fileno(), False)
    pool_size = int(argv[2]) if len(argv) > 2 else 2
    if os.getppid() == 1:  # the parent died before PDEATHSIG was armed
        return 0
    serve(control, pool_size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
