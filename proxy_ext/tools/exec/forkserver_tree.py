"""The fork server's process tree and working directories (see :mod:`forkserver`).

Standard library only, like the fork server: it runs as a script (``python -I -S forkserver.py``)
and loads this module by path, never through the proxy's package.
"""

from __future__ import annotations

import ctypes
import os
import shutil  # imported up front: the sandbox user may not be able to read the stdlib
import signal
import stat as stat_module
import time

__all__ = [
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_PDEATHSIG",
    "children",
    "kill_all_descendants",
    "make_workdir",
    "prctl",
    "remove_workdir",
    "remove_workdir_as_owner",
]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


# ------------------------------------------------------------------------------ process tree


def children(pid: int) -> list[int]:
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
        pids = children(me)
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



# ------------------------------------------------------------------------- working directories


def make_workdir(req: dict) -> str:
    path = os.path.join(req["tmp_base"], "proxy-ext-exec-" + os.urandom(9).hex())
    os.mkdir(path, 0o700)
    if req.get("uid") is not None:
        os.chown(path, req["uid"], req["gid"])
    return path


def remove_workdir(path: str) -> None:
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
        remove_workdir(path)
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(st.st_gid, st.st_gid, st.st_gid)
            os.setresuid(st.st_uid, st.st_uid, st.st_uid)
            remove_workdir(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    try:
        os.rmdir(path)  # the entry itself, if the owner could not remove it from its parent
    except OSError:
        pass
