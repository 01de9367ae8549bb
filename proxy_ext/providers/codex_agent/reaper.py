"""The small supervisor every codex CLI run is started under, so nothing it leaves behind becomes a zombie.

Killing codex's process group orphans its children in the same instant. Orphans go to the nearest
*child subreaper* among their ancestors, or to PID 1: under ``litellm --num_workers N`` that is
LiteLLM's worker supervisor, which reaps only Prisma's engines, so every codex grandchild of a run
whose client hung up stayed there as ``<defunct>`` until the proxy stopped. The supervisor started
here is itself a child subreaper: it runs codex in a process group of its own, passes the proxy's
signals on to that group, and reaps every descendant before it exits with codex's status.

Signals to the supervisor: SIGTERM asks codex to stop (SIGTERM to its group); SIGINT kills the group
at once (SIGKILL). It also gets SIGINT when the proxy thread that started it dies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

__all__ = ["KILL_NOW", "STOP", "supervised", "tell"]

STOP = signal.SIGTERM
"""Ask codex to stop: its group gets SIGTERM."""
KILL_NOW = signal.SIGINT
"""Kill codex's group now (SIGKILL); the supervisor then reaps and exits."""

_SUPERVISOR = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of codex come back here
libc.prctl(1, signal.SIGINT, 0, 0, 0)  # PR_SET_PDEATHSIG: the proxy thread died, kill codex
if os.getppid() != int(sys.argv[1]):  # it died before the line above
    sys.exit(137)
group = 0
def forward(signum, frame):
    if group:
        try:
            os.killpg(group, signal.SIGTERM if signum == signal.SIGTERM else signal.SIGKILL)
        except OSError:
            pass
for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(handled, forward)
argv = sys.argv[2:]
child = os.fork()
if child == 0:
    try:
        for handled in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(handled, signal.SIG_DFL)
        os.setpgid(0, 0)
        os.execv(argv[0], argv)
    except BaseException as exc:
        os.write(2, f"codex could not be started: {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(127)
try:
    os.setpgid(child, child)  # whichever of the two runs first
except OSError:
    pass
group = child
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)  # the proxy reads EOF when codex closes its output, not when this exits
status = os.waitpid(child, 0)[1]
try:
    os.killpg(group, signal.SIGKILL)  # whatever codex left running in its group
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


def supervised(command: list[str]) -> list[str]:
    """The argv that runs ``command`` under the supervisor (started by this process and thread)."""
    return [sys.executable, "-I", "-S", "-c", _SUPERVISOR, str(os.getpid()), *command]


def tell(pid: int, sig: int) -> None:
    """Send ``sig`` (STOP or KILL_NOW) to the supervisor ``pid``; a gone process is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
