"""The seccomp filter of isolated exec tools, compiled by libseccomp (not hand-written BPF).

A deny-list on top of bwrap's namespaces, in the spirit of Flatpak's and Docker's default
profiles: calls a sandboxed script has no business making, that widen the kernel's attack surface
or escape the namespaces, fail with EPERM (``clone3`` with ENOSYS, so libc falls back to ``clone``,
whose flags can be checked). Without network access, creating IPv4/IPv6 sockets fails too — a
second wall behind the empty network namespace. libseccomp (``libseccomp.so.2``, a Debian base
package) resolves the names for this machine's architecture and generates the BPF program; other
architectures' syscall ABIs (e.g. 32-bit ``int 0x80``) kill the process. The program is built
once in the proxy and handed to bwrap (``--seccomp FD``) for every call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

__all__ = ["DENIED", "seccomp_program"]

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init",
    "keyctl", "add_key", "request_key",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "swapon", "swapoff", "unshare", "setns", "chroot",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm", "uselib",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "open_by_handle_at", "name_to_handle_at",
)
"""System calls that fail with EPERM inside the sandbox."""

_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_FILTER_ATTR_BADARCH = 1
_CMP_EQ, _CMP_MASKED_EQ = 4, 7
_CLONE_NEWUSER = 0x10000000
_TIOCSTI = 0x5412
_AF_INET, _AF_INET6, _AF_PACKET = 2, 10, 17


def _errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _rule(lib: ctypes.CDLL, ctx: int, action: int, name: str, *compare: tuple[int, int, int, int]) -> None:
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return  # not a system call on this architecture (e.g. iopl on arm64)
    array = (_ArgCmp * len(compare))(*(_ArgCmp(*c) for c in compare)) if compare else None
    if lib.seccomp_rule_add_array(ctx, action, number, len(compare), array) != 0:
        raise OSError(f"libseccomp refused the rule for {name}")


def seccomp_program(deny_network: bool) -> bytes | None:
    """The BPF program (None when libseccomp is not available on this machine)."""
    lib = _library()
    if lib is None:
        return None
    ctx = lib.seccomp_init(_ALLOW)
    if not ctx:
        return None
    try:
        lib.seccomp_attr_set(ctx, _FILTER_ATTR_BADARCH, _KILL_PROCESS)
        eperm = _errno(errno.EPERM)
        for name in DENIED:
            _rule(lib, ctx, eperm, name)
        _rule(lib, ctx, _errno(errno.ENOSYS), "clone3")
        _rule(lib, ctx, eperm, "clone", (0, _CMP_MASKED_EQ, _CLONE_NEWUSER, _CLONE_NEWUSER))
        _rule(lib, ctx, eperm, "ioctl", (1, _CMP_MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
        families = (_AF_PACKET, _AF_INET, _AF_INET6) if deny_network else (_AF_PACKET,)
        for family in families:
            _rule(lib, ctx, eperm, "socket", (0, _CMP_EQ, family, 0))
        fd = os.memfd_create("proxy-ext-seccomp")
        try:
            if lib.seccomp_export_bpf(ctx, fd) != 0:
                return None
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
