"""Namespace isolation of exec tools with bubblewrap (``tools.exec.isolation``).

With ``bwrap`` every tool process runs in new user, PID, IPC, UTS, cgroup and (unless the tool is
allowed the network) network namespaces, under a seccomp filter, and sees a read-only view of only
what an interpreter needs: ``/usr`` and the ``/bin``/``/lib*`` links, a handful of ``/etc`` files,
the interpreter's own prefix, ``tools.exec.ro_paths``, a fresh ``/proc`` and ``/dev``, a private
``/tmp`` and its own working directory. The proxy's files, config, ``.env``, home directories,
other processes and the host's loopback services are not there.

This module runs in the proxy: it finds bwrap, probes it once as the sandbox user, builds the
mount arguments and the seccomp program; the fork server's supervisors add the per-call working
directory and start the tool through bwrap (see ``forkserver.py``).
"""

from __future__ import annotations

import atexit
import base64
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

from proxy_ext import subreaper
from proxy_ext.config import ExecToolConfig
from proxy_ext.tools.exec.seccomp import seccomp_program

__all__ = ["Isolation", "bwrap_arguments", "isolation_for", "resolve_isolation"]

logger = logging.getLogger("proxy_ext.tools.exec")

_TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs need of /etc at run time (the linker's cache, /usr/bin's alternatives links, the
# time zone, user and group names). Copied once into a private directory that is bound as /etc:
# every bind mount costs ~0.2 ms per call, and this is one instead of five.
_ETC = ("ld.so.cache", "alternatives", "localtime", "passwd", "group")
# A minimal /dev: three device nodes and links (bwrap's --dev mounts about eight things).
_DEV = ("--dev-bind", "/dev/null", "/dev/null", "--dev-bind", "/dev/zero", "/dev/zero", "--dev-bind", "/dev/urandom", "/dev/urandom",
        "--symlink", "urandom", "/dev/random", "--symlink", "/proc/self/fd", "/dev/fd", "--symlink", "/proc/self/fd/0", "/dev/stdin",
        "--symlink", "/proc/self/fd/1", "/dev/stdout", "--symlink", "/proc/self/fd/2", "/dev/stderr", "--symlink", "/tmp", "/dev/shm")
_ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "gai.conf", "ssl", "ca-certificates")
"""Also copied when some tool may use the network (a copy: re-read at proxy start)."""
_NEVER_BIND = ("/", "/root", "/home", "/etc", "/proc", "/sys", "/dev", "/tmp", "/var", "/run")
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Isolation:
    """How tool processes are isolated in this proxy."""

    mode: str
    """``bwrap``, ``none`` (configured, or ``auto`` without a usable bwrap) or ``unavailable``
    (``bwrap`` was required and cannot run: exec tools are refused)."""
    reason: str = ""
    """A fixed, path-free sentence for /ready and the tools' error (why not bwrap)."""
    bwrap: str | None = None
    """The bwrap executable."""
    mounts: tuple[str, ...] = ()
    """bwrap arguments for the read-only view (the same for every call)."""
    seccomp: dict[bool, str] = field(default_factory=dict)
    """Base64 seccomp BPF programs by "network allowed" (absent: no seccomp filter)."""

    def request(self, network: bool) -> dict[str, Any] | None:
        """The ``bwrap`` part of a fork-server call request (None: no isolation)."""
        if self.mode != "bwrap" or self.bwrap is None:
            return None
        return {"path": self.bwrap, "mounts": list(self.mounts), "network": network, "seccomp": self.seccomp.get(network)}

    def describe(self) -> str:
        """One line for ``doctor``: which isolation is active."""
        if self.mode == "bwrap":
            return f"bwrap ({'seccomp filter' if self.seccomp else 'no seccomp filter: libseccomp not found'})"
        return f"{self.mode}: {self.reason}" if self.reason else self.mode


def _python_prefix(python: str | None) -> str | None:
    """The install prefix of ``python`` when it lives outside /usr (it must be visible to run)."""
    if not python:
        return None
    real = os.path.realpath(python)
    prefix = os.path.dirname(os.path.dirname(real))
    if real.startswith("/usr/") or prefix in _NEVER_BIND or not os.path.isdir(prefix):
        return None
    return prefix


def minimal_etc(network: bool) -> str:
    """A private directory (mode 0755, removed when the proxy exits) holding copies of the /etc
    entries tools need; bound read-only as the sandbox's /etc."""
    path = tempfile.mkdtemp(prefix="proxy-ext-etc-")
    os.chmod(path, 0o755)
    atexit.register(shutil.rmtree, path, True)
    for name in _ETC + (_ETC_NETWORK if network else ()):
        source, target = os.path.join("/etc", name), os.path.join(path, name)
        try:
            if os.path.islink(source):
                os.symlink(os.readlink(source), target)
            elif os.path.isdir(source):
                shutil.copytree(source, target, symlinks=True)
            elif os.path.isfile(source):
                shutil.copy2(source, target)
        except OSError:
            continue  # a missing or unreadable entry: programs do without it
    return path


def bwrap_arguments(config: ExecToolConfig, python: str | None, etc: str) -> tuple[str, ...]:
    """The read-only view: ``/usr``, the top-level links, the minimal ``etc`` directory as /etc,
    the interpreter's prefix and ``ro_paths`` (network files only when a tool may use the network)."""
    args: list[str] = ["--ro-bind", "/usr", "/usr", "--ro-bind", etc, "/etc"]
    for path in _TOP_LEVEL:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in filter(None, [_python_prefix(python), *config.ro_paths]):
        args += ["--ro-bind-try", path, path]
    tmp_size = max(16, config.limits.file_size_mb * 4) * 1024 * 1024
    args += ["--proc", "/proc", *_DEV, "--size", str(tmp_size), "--tmpfs", "/tmp"]
    return tuple(args)


def _find_bwrap(config: ExecToolConfig) -> str | None:
    if os.sep in config.bwrap:
        return config.bwrap if os.access(config.bwrap, os.X_OK) else None
    return shutil.which(config.bwrap, path=f"{config.path}:/usr/bin:/bin")


def _probe(bwrap: str, mounts: tuple[str, ...], uid: int | None, gid: int | None) -> str | None:
    """Run ``true`` under bwrap as the sandbox user, as a tool would; why it failed, or None."""
    # Under the subreaper: bwrap's outer process exits before its namespace's init is reaped, and
    # that orphan went to the nearest subreaper or PID 1 (the proxy itself in a container without
    # an init) and stayed a zombie.
    argv = subreaper.supervised([bwrap, *_NAMESPACES, "--unshare-net", *mounts, "--", "/bin/true"], uid, gid)
    try:
        result = subprocess.run(argv, env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not be started ({type(exc).__name__})"
    if result.returncode != 0:
        logger.warning("proxy_ext: bwrap probe failed: %s", result.stderr.decode(errors="replace").strip()[:300])
        return "bwrap cannot create namespaces here (e.g. unprivileged user namespaces are disabled)"
    return None


_NAMESPACES = ("--unshare-user", "--disable-userns", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session")
"""Namespaces of every call (network is added per tool); shared with the fork server's request."""


def resolve_isolation(config: ExecToolConfig, uid: int | None, gid: int | None, python: str | None) -> Isolation:
    """The isolation this proxy's exec tools get (probes bwrap once; call it once per backend)."""
    if config.isolation == "none":
        return Isolation("none", "isolation off (tools.exec.isolation: none)")
    bwrap = _find_bwrap(config)
    mounts = bwrap_arguments(config, python, minimal_etc(bool(config.allow_network))) if bwrap else ()
    problem = "bwrap (bubblewrap) is not installed" if bwrap is None else _probe(bwrap, mounts, uid, gid)
    if problem is not None:
        if config.isolation == "bwrap":
            return Isolation("unavailable", f"tools.exec.isolation is bwrap but {problem}; install bubblewrap or set isolation: auto")
        logger.warning("proxy_ext: exec tools run without namespace isolation: %s (tools.exec.isolation: auto)", problem)
        return Isolation("none", f"{problem}: tools run without namespace isolation")
    programs = {}
    for network in (False, True):
        program = seccomp_program(deny_network=not network)
        if program is not None:
            programs[network] = base64.b64encode(program).decode()
    return Isolation("bwrap", bwrap=bwrap, mounts=(*_NAMESPACES, *mounts), seccomp=programs)


_resolved: dict[int, tuple[ExecToolConfig, Isolation]] = {}
_resolved_lock = threading.Lock()


def isolation_for(config: ExecToolConfig) -> Isolation:
    """The isolation of exec tools with ``config`` in this process, resolved (and bwrap probed)
    once: the tools, /ready and ``doctor`` all see the same answer."""
    from proxy_ext.tools.exec.sandbox import SandboxError, find_python, resolve_user

    with _resolved_lock:
        cached = _resolved.get(id(config))
        if cached is not None and cached[0] is config:
            return cached[1]
        try:
            user = resolve_user(config)
        except SandboxError as exc:
            return Isolation("unavailable", str(exc))
        isolation = resolve_isolation(config, user.uid, user.gid, find_python(config, user))
        _resolved[id(config)] = (config, isolation)
        return isolation
