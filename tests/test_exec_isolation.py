"""Exec tools under bubblewrap isolation, tried as an attacker would: the tool's code reads files,
opens connections, writes where it should not and leaves processes behind. Real processes; the
proxy's side is this test process (its pid, environment and checkout stand in for the proxy's)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_ext.config import ExecToolConfig
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.exec import ExecToolBackend
from proxy_ext.tools.exec.isolation import resolve_isolation
from tests.harness import REPO_ROOT

CTX = ToolContext()


def _isolated(**overrides) -> ExecToolBackend:
    return ExecToolBackend(ExecToolConfig(enabled=True, isolation="bwrap", shell_mode="unrestricted", timeout_s=20, max_timeout_s=30, **overrides))


def _bwrap_problem() -> str | None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "bwrap isolation tests run as root on Linux (tools run as the sandbox user)"
    isolation = resolve_isolation(ExecToolConfig(enabled=True, isolation="bwrap"), 65534, 65534, "/usr/bin/python3")
    return None if isolation.mode == "bwrap" else isolation.reason


pytestmark = pytest.mark.skipif(_bwrap_problem() is not None, reason=f"bubblewrap is not usable here: {_bwrap_problem()}")


@pytest.fixture(scope="module")
def isolated() -> Iterator[ExecToolBackend]:
    backend = _isolated()
    yield backend
    backend.close()


async def run_python(backend: ExecToolBackend, code: str, timeout_s: float = 20) -> dict:
    result = await backend.invoke("exec_python", {"code": code, "timeout_s": timeout_s}, CTX)
    assert result.ok, result.error
    return result.content


def _probe(code: str) -> str:
    """Python that prints one JSON line: what happened when the tool tried ``code`` (an expression
    or statements setting ``out``)."""
    return f"import json, os, socket\ntry:\n    out = None\n    {code}\n    print(json.dumps({{'ok': True, 'out': out}}))\n" \
           f"except Exception as exc:\n    print(json.dumps({{'ok': False, 'error': type(exc).__name__ + ': ' + str(exc)}}))\n"


async def attempt(backend: ExecToolBackend, code: str) -> dict:
    content = await run_python(backend, _probe(code))
    assert content["rc"] == 0, content
    return json.loads(content["stdout"])


# ----------------------------------------------------------------------------------- files

@pytest.mark.parametrize("path", [
    str(REPO_ROOT / "proxy_config.yaml"), str(REPO_ROOT / "pyproject.toml"), str(REPO_ROOT / ".env"),
    f"/proc/{os.getpid()}/environ", "/root", "/etc/shadow", "/home",
], ids=lambda path: path.replace(f"/proc/{os.getpid()}/", "/proc/<this process>/"))  # the same id in every xdist worker
async def test_the_proxy_files_are_not_visible(isolated, path):
    seen = await attempt(isolated, f"out = sorted(os.listdir({path!r})) if os.path.isdir({path!r}) else open({path!r}).read()[:100]")
    assert seen["ok"] is False and ("FileNotFoundError" in seen["error"] or "PermissionError" in seen["error"]), seen


async def test_files_under_tmp_of_the_host_are_not_visible(isolated, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("api_key: sk-not-for-tools")
    secret.chmod(0o644)
    seen = await attempt(isolated, f"out = open({str(secret)!r}).read()")
    assert seen["ok"] is False and "FileNotFoundError" in seen["error"]


async def test_only_its_own_processes_are_visible(isolated):
    seen = await attempt(isolated, "out = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())")
    assert seen["ok"] and len(seen["out"]) <= 4 and os.getpid() not in seen["out"] or seen["out"] == sorted(seen["out"])
    assert max(seen["out"]) < 50, "the tool sees the host's process ids"


@pytest.mark.parametrize("target", ["/usr/x", "/etc/x", "/x", "/proc/x"])
async def test_writes_outside_the_working_directory_fail(isolated, target):
    seen = await attempt(isolated, f"open({target!r}, 'w').write('x')")
    assert seen["ok"] is False and ("OSError" in seen["error"] or "Error" in seen["error"]), seen


async def test_tmp_is_private_and_vanishes(isolated):
    listing = "out = [n for n in os.listdir('/tmp') if n != os.path.basename(os.getcwd())]"  # the call's own cwd is there too
    first = await attempt(isolated, f"open('/tmp/left-behind', 'w').write('x'); {listing}")
    assert first["ok"] and first["out"] == ["left-behind"]
    second = await attempt(isolated, listing)
    assert second["ok"] and second["out"] == []
    assert not Path("/tmp/left-behind").exists()


async def test_the_working_directory_is_writable_and_gone_after_the_call(isolated):
    seen = await attempt(isolated, "open('note.txt', 'w').write('hi'); out = os.getcwd()")
    assert seen["ok"] and seen["out"].startswith("/")
    assert not os.path.exists(seen["out"])


# ----------------------------------------------------------------------------------- network

@pytest.fixture(scope="module")
def local_server() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"hello from the host\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


async def test_no_network_by_default(isolated, local_server):
    connect = await attempt(isolated, f"s = socket.create_connection(('127.0.0.1', {local_server}), timeout=2); out = s.recv(100).decode()")
    assert connect["ok"] is False, connect
    resolve = await attempt(isolated, "out = socket.getaddrinfo('example.com', 443)")
    assert resolve["ok"] is False, resolve
    interfaces = await attempt(isolated, "out = sorted(name for _, name in socket.if_nameindex())")
    assert interfaces["ok"] is False or interfaces["out"] == ["lo"]


async def test_a_tool_allowed_the_network_reaches_the_local_server(local_server):
    backend = _isolated(allow_network=["exec_python"])
    try:
        connect = await attempt(backend, f"s = socket.create_connection(('127.0.0.1', {local_server}), timeout=5); out = s.recv(100).decode()")
        assert connect == {"ok": True, "out": "hello from the host\n"}
        shell = await backend.invoke("exec_shell", {"command": "cat /etc/hostname; echo ok"}, CTX)
        assert shell.ok and shell.content["rc"] == 0  # exec_shell keeps no network: only exec_python was allowed
    finally:
        backend.close()


# ----------------------------------------------------------------------------------- kernel surface

async def test_seccomp_denies_namespaces_and_ptrace(isolated):
    code = ("import ctypes; libc = ctypes.CDLL(None, use_errno=True)\n"
            "    r1 = libc.unshare(0x10000000); e1 = ctypes.get_errno()\n"
            "    r2 = libc.ptrace(0, 0, 0, 0); e2 = ctypes.get_errno()\n"
            "    out = [r1, e1, r2, e2]")
    seen = await attempt(isolated, code)
    assert seen["ok"] and seen["out"][0] == -1 and seen["out"][2] == -1 and seen["out"][3] == 1, seen  # EPERM


async def test_runs_as_the_sandbox_user_without_privileges(isolated):
    seen = await attempt(isolated, "out = [os.getuid(), os.getgid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0]]")
    assert seen["ok"] and seen["out"][:2] == [65534, 65534] and int(seen["out"][2], 16) == 0


# ----------------------------------------------------------------------------------- the sandbox still holds

def _count(text: str) -> int:
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if text.encode() in handle.read():
                    count += 1
        except OSError:
            pass
    return count


async def test_background_processes_and_fork_bombs_are_reaped(isolated):
    tag = f"{time.time():.6f}"
    result = await isolated.invoke("exec_shell", {"command": f"(sleep 3{tag} &) ; setsid sleep 3{tag} & echo started", "timeout_s": 5}, CTX)
    assert result.ok and result.content["stdout"] == "started\n"
    bomb = await isolated.invoke("exec_shell", {"command": f"b() {{ sleep 4{tag} & b & }}; b; sleep 1", "timeout_s": 3}, CTX)
    assert bomb.ok
    deadline = time.monotonic() + 5
    while (_count(f"sleep 3{tag}") or _count(f"sleep 4{tag}")) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert _count(f"sleep 3{tag}") == 0 and _count(f"sleep 4{tag}") == 0


async def test_timeouts_output_caps_and_limits_still_apply(isolated):
    slow = await run_python(isolated, "import time; time.sleep(30)", timeout_s=1)
    assert slow["timed_out"] is True and slow["rc"] == -9
    loud = await run_python(isolated, "import sys; sys.stdout.write('x' * 300000)")
    assert loud["truncated"] is True and len(loud["stdout"]) == isolated.config.max_output_bytes
    busy = _isolated(limits={"cpu_s": 1})
    try:
        spin = await run_python(busy, "while True: pass")
    finally:
        busy.close()
    assert spin["timed_out"] is False and spin["rc"] in (-24, -9), spin  # SIGXCPU / SIGKILL, not 128+N
    hog = await run_python(isolated, "x = bytearray(2 * 1024 ** 3)")
    assert hog["rc"] != 0 and "MemoryError" in hog["stderr"]


async def test_required_bwrap_that_is_missing_refuses_with_a_clear_message():
    backend = ExecToolBackend(ExecToolConfig(enabled=True, isolation="bwrap", bwrap="/nonexistent/bwrap"))
    try:
        result = await backend.invoke("exec_python", {"code": "print(1)"}, CTX)
    finally:
        backend.close()
    assert result.ok is False and "bwrap" in result.error and "not installed" in result.error


async def test_auto_without_bwrap_falls_back_to_the_plain_sandbox():
    backend = ExecToolBackend(ExecToolConfig(enabled=True, isolation="auto", bwrap="/nonexistent/bwrap"))
    try:
        result = await backend.invoke("exec_python", {"code": "import os; print(os.path.exists('/etc/hostname'))"}, CTX)
        assert result.ok and result.content["stdout"] == "True\n"  # the host's /etc: no isolation
        assert backend.isolation().mode == "none" and "without namespace isolation" in backend.isolation().reason
    finally:
        backend.close()


def test_ready_and_doctor_report_the_isolation(tmp_path):
    import yaml

    from proxy_ext.cli import diagnose
    from proxy_ext.ready import CheckResult, check_exec, check_exec_isolation, readiness
    from proxy_ext.state import load_runtime

    def run_checks(runtime):  # the exec checks only (the router check needs a running proxy)
        checks = {"router": CheckResult(True)}
        checks["exec_tools"] = asyncio.run(check_exec(runtime, 1.0))
        checks["exec_isolation"] = asyncio.run(check_exec_isolation(runtime, 1.0))
        return checks

    def config(isolation: dict) -> Path:
        path = tmp_path / f"c{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump({"model_list": [{"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}}],
                                        "litellm_settings": {"callbacks": ["proxy_ext.extension"]},
                                        "general_settings": {"master_key": "sk-doctor-test-key-0123456789abcdef"},
                                        "proxy_ext": {"tools": {"exec": {"enabled": True, **isolation}}}}))
        return path

    active = load_runtime(config({"isolation": "bwrap"}))
    checks = run_checks(active)
    assert checks["exec_isolation"].ok and checks["exec_isolation"].reason == "bwrap"
    assert diagnose(config({"isolation": "bwrap"})).capabilities["exec isolation"] == "bwrap (seccomp filter)"

    missing = load_runtime(config({"isolation": "auto", "bwrap": "/nonexistent/bwrap"}))
    checks = run_checks(missing)
    status, body = readiness(missing, checks)
    assert status == 200 and body["status"] == "degraded" and body["failing"] == ["exec_isolation"], body
    assert any("bubblewrap" in w for w in diagnose(config({"isolation": "auto", "bwrap": "/nonexistent/bwrap"})).warnings)

    required = load_runtime(config({"isolation": "bwrap", "bwrap": "/nonexistent/bwrap"}))
    checks = run_checks(required)
    assert not checks["exec_tools"].ok and not checks["exec_isolation"].ok


# ----------------------------------------------------------------------------------- probe

_PROBE_IN_A_SUBREAPER = """
import ctypes, json, os, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: as a proxy that is PID 1 in a container
from proxy_ext.config import ExecToolConfig
from proxy_ext.tools.exec.isolation import resolve_isolation
mode = resolve_isolation(ExecToolConfig(enabled=True, isolation="bwrap"), 65534, 65534, "/usr/bin/python3").mode
time.sleep(0.5)
me = os.getpid()
children = open(f"/proc/{me}/task/{me}/children").read().split()
states = [open(f"/proc/{c}/stat").read().rsplit(")", 1)[1].split()[0] for c in children]
print(json.dumps({"mode": mode, "children": states}))
"""


def test_the_bwrap_probe_leaves_no_zombie():
    """bwrap's inner process outlives the outer one; the orphan went to the nearest subreaper — the
    proxy itself when it is PID 1 in a container — and was never reaped: one zombie per worker."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _PROBE_IN_A_SUBREAPER], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, check=True).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen == {"mode": "bwrap", "children": []}, seen
