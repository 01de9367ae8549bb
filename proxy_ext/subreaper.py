"""A small supervisor to start child programs under, so nothing they leave behind becomes a zombie.

Killing a program's process group orphans its children in the same instant. Orphans go to the
nearest *child subreaper* among their ancestors, or to PID 1: under ``litellm --num_workers N`` that
is LiteLLM's worker supervisor, which reaps only Prisma's engines (every codex grandchild of a run
whose client hung up stayed there as ``<defunct>`` until the proxy stopped), and in a container
without an init it is the proxy itself (bwrap's namespace init, which outlives bwrap's outer
process). The supervisor started here is itself a child subreaper: it runs the program in a process
group of its own (as another user, if asked), passes the proxy's signals on to that group, and kills
and reaps every descendant before it exits with the program's status.

Used for every codex CLI run and for the exec tools' bwrap probe. Signals to the supervisor:
:data:`STOP` (SIGTERM) asks the program to stop (SIGTERM to its group); :data:`KILL_NOW` (SIGINT)
kills the group at once (SIGKILL). It also gets SIGINT when the proxy thread that started it dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

__all__ = ["KILL_NOW", "STOP", "supervised", "tell"]

STOP = signal.SIGTERM
"""Ask the program to stop: its group gets SIGTERM."""
KILL_NOW = signal.SIGINT
"""Kill the program's group now (SIGKILL); the supervisor then reaps and exits."""

_SUPERVISOR = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of the program come back here
libc.prctl(1, signal.SIGINT, 0, 0, 0)  # PR_SET_PDEATHSIG: the proxy thread died, kill the program
if os.getppid() != int(sys.argv[1]):  # it died before the line above
    sys.exit(137)
uid, gid, argv = sys.argv[2], sys.argv[3], sys.argv[4:]
group = 0
def forward(signum, frame):
    if group:
        try:
            os.killpg(group, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGKILL)
        except OSError:
            pass
for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(handled, forward)
child = os.fork()
if child == 0:
    try:
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(handled, signal.SIG_DFL)
        os.setpgid(0, 0)
        if gid != "-":
            os.setgroups([])
            os.setgid(int(gid))
        if uid != "-":
            os.setuid(int(uid))
        os.execv(argv[0], argv)
    except BaseException as exc:
        os.write(2, f"{os.path.basename(argv[0])} could not be started: {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(127)
try:
    os.setpgid(child, child)  # whichever of the two runs first
except OSError:
    pass
group = child
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)  # the proxy reads EOF when the program closes its output, not when this exits
status = os.waitpid(child, 0)[1]
try:
    os.killpg(group, signal.SIGKILL)  # whatever the program left running in its group
except OSError:
    pass
while True:  # then every descendant still alive, wherever its group, and every orphan handed to us
    try:
        pid = os.waitpid(-1, os.WNOHANG)[0]
    except ChildProcessError:
        break
    if pid:
        continue
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as listing:
            for left in listing.read().split():
                os.kill(int(left), signal.SIGKILL)
    except OSError:
        pass
    time.sleep(0.01)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def supervised(command: list[str], uid: int | None = None, gid: int | None = None) -> list[str]:
    """The argv that runs ``command`` under the supervisor (to be started by this process and
    thread), as ``uid``/``gid`` when given (without supplementary groups; needs root)."""
    return [sys.executable, "-I", "-S", "-c", _SUPERVISOR, str(os.getpid()), "-" if uid is None else str(uid),
            "-" if gid is None else str(gid), *command]


def tell(pid: int, sig: int) -> None:
    """Send ``sig`` (STOP or KILL_NOW) to the supervisor ``pid``; a gone process is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
