"""The exec sandbox, driven through ExecToolBackend.invoke: real processes, counted in /proc.

These unit tests pin the fork server's own mechanisms (identity, rlimits, tree kill, clean-up)
with ``isolation: none``; tests/test_exec_isolation.py runs the same kinds of checks under bwrap
and the isolation itself. The proxy tests at the end use the default (``auto``: bwrap here).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from proxy_ext.config import ExecToolConfig, parse_config, ConfigError
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.exec import ExecToolBackend, sandbox_problem

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the exec sandbox needs Linux")

CTX = ToolContext()


def make(**overrides: Any) -> ExecToolBackend:
    return ExecToolBackend(ExecToolConfig(enabled=True, **{"isolation": "none", **overrides}))


@pytest.fixture(scope="module")
def backend() -> Iterator[ExecToolBackend]:
    b = make()
    yield b
    b.close()


@pytest.fixture(scope="module")
def exec_base() -> Iterator[str]:
    """A working-directory base like /tmp (sticky, world-writable) that only these tests use."""
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="proxy-ext-test-base-", dir="/tmp")
    os.chmod(base, 0o1777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def unrestricted(exec_base) -> Iterator[ExecToolBackend]:
    b = make(shell_mode="unrestricted", timeout_s=1.5, tmp_dir=exec_base)
    yield b
    b.close()


async def assert_no_workdirs(base: str, within_s: float = 4.0) -> None:
    """Every call's working directory is gone (also after a supervisor died mid-call)."""
    deadline = time.monotonic() + within_s
    while os.listdir(base) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert os.listdir(base) == []


def marker() -> str:
    """A sleep duration nobody else uses, to find our processes in /proc."""
    return f"{random.randint(1000, 9999)}.{random.randint(100000, 999999)}"


def count_processes(text: str) -> int:
    """Live (non-zombie) processes whose command line is exactly ``text`` (program by basename)."""
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace").split("\0")[:-1]
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if argv and " ".join([os.path.basename(argv[0]), *argv[1:]]) == text and state != b"Z":
            found += 1
    return found


async def wait_for_count(text: str, at_least: int, within_s: float = 5.0) -> int:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        n = count_processes(text)
        if n >= at_least:
            return n
        await asyncio.sleep(0.02)
    return count_processes(text)


async def shell(b: ExecToolBackend, command: str, **extra: Any) -> dict[str, Any]:
    result = await b.invoke("exec_shell", {"command": command, **extra}, CTX)
    assert result.ok, result.error
    return result.content


async def python(b: ExecToolBackend, code: str, **extra: Any) -> dict[str, Any]:
    result = await b.invoke("exec_python", {"code": code, **extra}, CTX)
    assert result.ok, result.error
    return result.content


def test_this_host_can_run_the_sandbox():
    assert sandbox_problem(ExecToolConfig(enabled=True)) is None


async def test_result_shape_and_exit_code(backend):
    out = await shell(backend, "echo hello 'two words'")
    assert set(out) == {"rc", "stdout", "stderr", "timed_out", "truncated", "duration_ms"}
    assert out["rc"] == 0 and out["stdout"] == "hello two words\n" and out["stderr"] == ""
    assert out["timed_out"] is False and out["truncated"] is False and out["duration_ms"] > 0
    failing = await python(backend, "import sys; print('oops', file=sys.stderr); sys.exit(3)")
    assert failing["rc"] == 3 and failing["stderr"] == "oops\n"


# --------------------------------------------------------------------------- process trees


async def test_timeout_kills_background_nohup_setsid_children(unrestricted):
    tag = marker()
    command = (f"sleep {tag} & nohup sleep {tag} >/dev/null 2>&1 & setsid sleep {tag} & "
               f"(sleep {tag} &) ; sleep {tag}")
    task = asyncio.ensure_future(unrestricted.invoke("exec_shell", {"command": command, "timeout_s": 1.0}, CTX))
    assert await wait_for_count(f"sleep {tag}", 5) == 5, "the tool did not start its background processes"
    result = await task
    assert result.ok and result.content["timed_out"] is True
    assert count_processes(f"sleep {tag}") == 0


async def test_background_children_die_when_the_tool_exits_normally(unrestricted):
    tag = marker()
    started = time.monotonic()
    out = await shell(unrestricted, f"sleep {tag} & setsid sleep {tag} & echo started")
    assert out["rc"] == 0 and out["stdout"] == "started\n" and out["timed_out"] is False
    assert time.monotonic() - started < 1.0, "the call waited for its background children"
    assert count_processes(f"sleep {tag}") == 0


async def test_double_forked_daemon_from_python_is_killed(backend):
    tag = marker()
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{tag}'])
    os._exit(0)
time.sleep(0.2)
print('parent done')
"""
    task = asyncio.ensure_future(backend.invoke("exec_python", {"code": code}, CTX))
    assert await wait_for_count(f"sleep {tag}", 1) == 1
    result = await task
    assert result.content["stdout"] == "parent done\n"
    assert count_processes(f"sleep {tag}") == 0


async def test_cancelled_call_kills_its_tree(unrestricted):
    tag = marker()
    task = asyncio.ensure_future(unrestricted.invoke("exec_shell", {"command": f"setsid sleep {tag} & sleep {tag}"}, CTX))
    assert await wait_for_count(f"sleep {tag}", 2) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 3
    while count_processes(f"sleep {tag}") and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert count_processes(f"sleep {tag}") == 0


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return int(fh.read().rsplit(b")", 1)[1].split()[1])


def _pids_of(text: str) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace").split("\0")[:-1]
        except OSError:
            continue
        if argv and " ".join([os.path.basename(argv[0]), *argv[1:]]) == text:
            found.append(int(entry))
    return found


async def test_fork_server_kills_the_tree_of_a_supervisor_that_died(unrestricted):
    tag = marker()
    task = asyncio.ensure_future(unrestricted.invoke("exec_shell", {"command": f"setsid sleep {tag} & sleep {tag}", "timeout_s": 30}, CTX))
    assert await wait_for_count(f"sleep {tag}", 2) == 2
    supervisor = _ppid(_pids_of(f"sleep {tag}")[0])
    while _ppid(supervisor) != unrestricted.sandbox.server_pid:  # up through the shell (and bwrap)
        supervisor = _ppid(supervisor)
        assert supervisor > 1, "the tool does not descend from the fork server"
    os.kill(supervisor, signal.SIGKILL)
    result = await task
    assert result.ok is False and "without a result" in result.error
    deadline = time.monotonic() + 4
    while count_processes(f"sleep {tag}") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert count_processes(f"sleep {tag}") == 0
    await assert_no_workdirs(unrestricted.config.tmp_dir)


async def test_closing_the_backend_kills_calls_in_flight(exec_base):
    tag = marker()
    b = make(shell_mode="unrestricted", tmp_dir=exec_base)
    task = asyncio.ensure_future(b.invoke("exec_shell", {"command": f"setsid sleep {tag} & sleep {tag}", "timeout_s": 30}, CTX))
    assert await wait_for_count(f"sleep {tag}", 2) == 2
    await asyncio.to_thread(b.close)
    result = await task
    assert result.ok is False
    assert count_processes(f"sleep {tag}") == 0
    await assert_no_workdirs(exec_base)


def test_tools_die_with_a_crashed_proxy(tmp_path, exec_base):
    """SIGKILL the process that owns the backend: its fork server is told (PDEATHSIG) and kills the tools."""
    import subprocess

    tag = marker()
    script = tmp_path / "owner.py"
    script.write_text(f"""
import asyncio
from proxy_ext.config import ExecToolConfig
from proxy_ext.tools.base import ToolContext
from proxy_ext.tools.exec import ExecToolBackend
b = ExecToolBackend(ExecToolConfig(enabled=True, isolation="none", shell_mode="unrestricted", timeout_s=30, tmp_dir={exec_base!r}))
asyncio.run(b.invoke("exec_shell", {{"command": "setsid sleep {tag} & sleep {tag}"}}, ToolContext()))
""")
    owner = subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd())
    try:
        deadline = time.monotonic() + 20
        while count_processes(f"sleep {tag}") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_processes(f"sleep {tag}") == 2
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 5
    while count_processes(f"sleep {tag}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count_processes(f"sleep {tag}") == 0
    asyncio.run(assert_no_workdirs(exec_base))


async def test_supervisors_are_reused_and_calls_stay_isolated(backend):
    seen = [await python(backend, "import os; print(os.getppid(), os.getcwd(), sorted(os.environ))") for _ in range(6)]
    supervisors = {out["stdout"].split()[0] for out in seen}
    cwds = {out["stdout"].split()[1] for out in seen}
    assert len(supervisors) <= 2, "a supervisor was forked per call"
    assert len(cwds) == 6 and not any(os.path.exists(c) for c in cwds)
    assert len({out["stdout"].split(" ", 2)[2] for out in seen}) == 1  # the same environment every time


async def test_stopped_supervisor_is_killed_at_the_deadline(exec_base):
    """A tool that stops its own supervisor (it may signal it) cannot keep its tree alive."""
    b = make(shell_mode="unrestricted", timeout_s=1.5, tmp_dir=exec_base, kill_grace_s=1.0)
    try:
        tag = marker()
        command = f"sleep {tag} & kill -STOP $PPID; sleep {tag}"
        started = time.monotonic()
        result = await b.invoke("exec_shell", {"command": command, "timeout_s": 1}, CTX)
        assert result.ok is False  # no answer from the stopped supervisor
        assert 1.9 < time.monotonic() - started < 5  # the call's timeout + kill_grace_s
        deadline = time.monotonic() + 4
        while count_processes(f"sleep {tag}") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert count_processes(f"sleep {tag}") == 0
        await assert_no_workdirs(exec_base)
    finally:
        b.close()


async def test_parallel_calls_run_concurrently_and_keep_their_order(backend):
    delays = [0.6, 0.1, 0.4, 0.0, 0.3]
    started = time.monotonic()
    results = await asyncio.gather(*(python(backend, f"import time; time.sleep({d}); print({i})") for i, d in enumerate(delays)))
    assert [r["stdout"] for r in results] == [f"{i}\n" for i in range(len(delays))]
    assert time.monotonic() - started < sum(delays), "the calls ran one after another"


async def test_fork_server_is_restarted_when_it_dies():
    b = make()
    try:
        assert (await shell(b, "echo one"))["stdout"] == "one\n"
        os.kill(b.sandbox.server_pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        assert (await shell(b, "echo two"))["stdout"] == "two\n"
    finally:
        b.close()


# ------------------------------------------------------------------------------ isolation


async def test_environment_holds_none_of_the_proxys_secrets(monkeypatch, unrestricted):
    secrets = {"LITELLM_MASTER_KEY": "sk-master-4f1c2d", "OPENAI_API_KEY": "sk-provider-9a8b7c", "SOME_RANDOM_VAR": "value-77e1"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    b = make(shell_mode="unrestricted")
    try:
        shown = (await shell(b, "env"))["stdout"]
        from_python = (await python(b, "import os; print(dict(os.environ))"))["stdout"]
        # The tool may try to read the proxy's (this test process's) environment through /proc.
        peek = await shell(b, f"cat /proc/{os.getpid()}/environ /proc/{b.sandbox.server_pid}/environ")
    finally:
        b.close()
    for value in secrets.values():
        assert value not in shown and value not in from_python and value not in peek["stdout"]
    names = {line.split("=", 1)[0] for line in shown.splitlines()}
    assert names <= {"PATH", "HOME", "TMPDIR", "PWD", "LANG", "LC_ALL", "TZ", "SHLVL", "_"}
    assert "LANG=C.UTF-8" in shown


async def test_fresh_working_directory_is_private_and_removed(backend):
    first = await python(backend, "import os; open('f.txt', 'w').write('x'); print(os.getcwd()); print(os.listdir('.'))")
    second = await python(backend, "import os; print(os.getcwd()); print(os.listdir('.'))")
    cwd1, listing1 = first["stdout"].splitlines()
    cwd2, listing2 = second["stdout"].splitlines()
    assert cwd1 != cwd2 and listing1 == "['f.txt']" and listing2 == "[]"
    assert not os.path.exists(cwd1) and not os.path.exists(cwd2)


async def test_the_tool_holds_no_descriptor_of_the_sandbox(backend):
    """Only stdin, stdout and stderr: not the fork server's control socket (a tool holding it could
    take other calls' connections off it), nor any pipe of its supervisor."""
    out = await python(backend, "import os; print(sorted(os.listdir('/proc/self/fd')))")
    assert out["stdout"] == "['0', '1', '2', '3']\n", out  # 3: the listing's own


@pytest.mark.skipif(os.geteuid() != 0, reason="privileges are dropped only when the proxy runs as root")
async def test_runs_as_the_unprivileged_user_when_root(backend):
    out = await python(backend, "import os; print(os.getuid(), os.getgid(), os.getgroups())")
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert out["stdout"] == f"{nobody.pw_uid} {nobody.pw_gid} []\n"
    denied = await python(backend, "open('/root/.x', 'w')")
    assert denied["rc"] == 1 and "PermissionError" in denied["stderr"]


# ------------------------------------------------------------------------------------ limits


async def test_output_is_capped_and_the_rest_discarded():
    b = make(max_output_bytes=1024)
    try:
        out = await python(b, "import sys\nfor _ in range(2000): sys.stdout.write('x' * 5000)\nsys.stderr.write('e' * 10)")
    finally:
        b.close()
    assert out["rc"] == 0 and out["truncated"] is True
    assert out["stdout"] == "x" * 1024 and out["stderr"] == "e" * 10


async def test_memory_limit():
    b = make(limits={"memory_mb": 128})
    try:
        out = await python(b, "x = bytearray(512 * 1024 * 1024); print('allocated')")
        small = await python(b, "x = bytearray(16 * 1024 * 1024); print('allocated')")
    finally:
        b.close()
    assert out["rc"] != 0 and "MemoryError" in out["stderr"] and "allocated" not in out["stdout"]
    assert small["rc"] == 0 and small["stdout"] == "allocated\n"


async def test_cpu_limit_kills_a_busy_loop_before_the_timeout():
    b = make(limits={"cpu_s": 1}, timeout_s=20, max_timeout_s=20)
    try:
        out = await python(b, "while True: pass")
    finally:
        b.close()
    assert out["timed_out"] is False and out["rc"] in (-signal.SIGXCPU, -signal.SIGKILL)
    assert out["duration_ms"] < 5000


async def test_file_size_limit():
    b = make(limits={"file_size_mb": 1})
    try:
        out = await python(b, "open('big', 'wb').write(b'x' * 2 * 1024 * 1024)")
    finally:
        b.close()
    # Python ignores SIGXFSZ and gets EFBIG ("File too large") instead.
    assert out["rc"] == 1 and "File too large" in out["stderr"]


@pytest.mark.serial  # RLIMIT_NPROC counts every process of the sandbox user: other suites' exec tools too
@pytest.mark.skipif(os.geteuid() != 0, reason="RLIMIT_NPROC counts every process of the user; only checked for the sandbox user")
async def test_process_count_limit():
    tag = marker()
    b = make(limits={"max_processes": 4})
    code = f"""
import subprocess
started = 0
try:
    for _ in range(20):
        subprocess.Popen(['/bin/sleep', '{tag}'])
        started += 1
except OSError as exc:
    print('refused after', started, type(exc).__name__)
"""
    try:
        out = await python(b, code)
    finally:
        b.close()
    assert out["stdout"].startswith("refused after"), out
    assert int(out["stdout"].split()[2]) < 4
    assert count_processes(f"sleep {tag}") == 0


async def test_per_call_timeout_is_capped_by_config_and_run_budget(backend):
    capped = make(timeout_s=0.5, max_timeout_s=0.5, shell_mode="unrestricted")
    try:
        started = time.monotonic()
        out = await shell(capped, "sleep 5", timeout_s=30)
        assert out["timed_out"] and time.monotonic() - started < 2.5
        started = time.monotonic()
        result = await backend.invoke("exec_shell", {"command": "sleep 5"}, ToolContext(timeout_s=0.3))
        assert result.content["timed_out"] and time.monotonic() - started < 2.0
    finally:
        capped.close()


# ---------------------------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("rm -rf /tmp/x", "not in tools.exec.shell_allowlist"),
        ("python3 -c 'print(1)'", "not in tools.exec.shell_allowlist"),
        ("/bin/rm x", "by name, not by path"),
        ("ls; rm -rf /", "metacharacters"),
        ("echo hi | rm", "metacharacters"),
        ("echo $(id)", "metacharacters"),
        ("echo `id`", "metacharacters"),
        ("cat < /etc/passwd", "metacharacters"),
        ("ls *.py", "metacharacters"),
        ("echo hi && id", "metacharacters"),
        ("env python3 -c 1", "env may only print"),
        ("find . -exec rm {} ;", "metacharacters"),
        ("find . -exec rm", "-exec is not allowed"),
        ("echo 'unbalanced", "cannot parse"),
        ("", "empty command"),
    ],
)
async def test_allowlist_refusals(backend, command, message):
    result = await backend.invoke("exec_shell", {"command": command}, CTX)
    assert result.ok is False and message in result.error


async def test_allowlist_allows_plain_commands_with_quoted_text(backend):
    out = await shell(backend, "echo 'a; b | c $HOME' \"*\"")
    assert out["stdout"] == "a; b | c $HOME *\n"
    assert (await shell(backend, "env"))["rc"] == 0


async def test_unrestricted_mode_runs_a_shell(unrestricted):
    out = await shell(unrestricted, "echo a b | wc -w; echo $((2+3))")
    assert out["stdout"].split() == ["2", "5"]


async def test_invalid_arguments_are_refused_before_running(backend):
    missing = await backend.invoke("exec_python", {}, CTX)
    assert missing.ok is False and "'code' is a required property" in missing.error
    extra = await backend.invoke("exec_shell", {"command": "ls", "cwd": "/"}, CTX)
    assert extra.ok is False and "cwd" in extra.error
    unknown = await backend.invoke("exec_ruby", {"code": "1"}, CTX)
    assert unknown.ok is False and "unknown tool" in unknown.error
    too_long = await backend.invoke("exec_python", {"code": "#" * 200_000}, CTX)
    assert too_long.ok is False and "max_code_bytes" in too_long.error


async def test_lists_both_tools(backend):
    names = [spec.name for spec in await backend.list_tools(CTX)]
    assert names == ["exec_python", "exec_shell"]


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "LITELLM_MASTER_KEY", "DB_PASSWORD", "PATH"])
def test_config_refuses_secret_or_sandbox_names_in_env_allowlist(name):
    with pytest.raises(ConfigError, match=name):
        parse_config({"tools": {"exec": {"env_allowlist": [name]}}})


# ------------------------------------------------------------------ through the real proxy (POST /agent/run)

PROVIDER_SECRET = "sk-provider-secret-" + os.urandom(6).hex()


@pytest.fixture(scope="module")
def exec_proxy(upstream):
    from tests.conftest import base_config
    from tests.harness import ProxyProcess

    config = base_config(upstream, {
        "agent": {"default_model": "fake/tx-default"},
        "tools": {"exec": {"enabled": True, "timeout_s": 2, "max_timeout_s": 5}},
    })
    with ProxyProcess(config, env={"OPENAI_API_KEY": PROVIDER_SECRET, "ANOTHER_SECRET": PROVIDER_SECRET + "-2"}) as process:
        yield process


def agent_run(proxy, model: str, **body: Any) -> dict[str, Any]:
    import httpx

    response = httpx.post(f"{proxy.base_url}/agent/run", json={"input": "run it", "model": f"fake/{model}", **body},
                          headers=proxy.headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def test_agent_runs_exec_tools(exec_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("tx-basic", Reply(tool_calls=[call("exec_shell", {"command": "echo hello"}, "s"),
                                                  call("exec_python", {"code": "print(6 * 7)"}, "p")]), Reply(text="42"))
    body = agent_run(exec_proxy, "tx-basic")
    assert body["ok"] and body["final_answer"] == "42"
    shell_result, python_result = tool_results(body)
    assert shell_result["stdout"] == "hello\n" and shell_result["rc"] == 0
    assert python_result["stdout"] == "42\n" and python_result["timed_out"] is False
    tools = {t["function"]["name"] for t in upstream.requests_for("tx-basic")[0]["body"]["tools"]}
    assert {"exec_python", "exec_shell", "calculator"} <= tools


def test_agent_exec_environment_has_none_of_the_proxys_secrets(exec_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("tx-env", Reply(tool_calls=[call("exec_shell", {"command": "env"}, "e"),
                                                call("exec_python", {"code": "import os; print(dict(os.environ))"}, "p")]), Reply(text="ok"))
    body = agent_run(exec_proxy, "tx-env")
    text = str(tool_results(body))
    assert "PATH=" in text
    for secret in (exec_proxy.master_key, PROVIDER_SECRET, "sk-fake-upstream-key"):
        assert secret not in text


def test_agent_exec_timeout_kills_background_grandchildren(exec_proxy, upstream):
    from tests.harness import Reply, call

    tag = marker()
    code = f"import subprocess, time\nsubprocess.Popen(['sleep', '{tag}'], start_new_session=True)\nsubprocess.Popen(['sleep', '{tag}'])\ntime.sleep(60)"
    upstream.script("tx-timeout", Reply(tool_calls=[call("exec_python", {"code": code, "timeout_s": 1}, "t")]), Reply(text="timed out"))
    body = agent_run(exec_proxy, "tx-timeout")
    (result,) = tool_results(body)
    assert result["timed_out"] is True and body["ok"]
    assert count_processes(f"sleep {tag}") == 0


def test_agent_parallel_exec_calls_keep_their_order(exec_proxy, upstream):
    from tests.harness import Reply, call

    calls = [call("exec_python", {"code": f"import time; time.sleep({d}); print('{name}')"}, name) for name, d in (("first", 0.8), ("second", 0.1), ("third", 0.4))]
    upstream.script("tx-parallel", Reply(tool_calls=calls), Reply(text="ok"))
    started = time.monotonic()
    body = agent_run(exec_proxy, "tx-parallel")
    assert time.monotonic() - started < 1.3 + 1.0  # concurrent: well under the summed 1.3 s plus start-ups
    ids = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    assert ids == ["first", "second", "third"]
    assert [r["stdout"] for r in tool_results(body)] == ["first\n", "second\n", "third\n"]


def test_agent_sees_allowlist_refusals(exec_proxy, upstream):
    from tests.harness import Reply, call

    upstream.script("tx-refuse", Reply(tool_calls=[call("exec_shell", {"command": "rm -rf /tmp"}, "r")]), Reply(text="refused"))
    body = agent_run(exec_proxy, "tx-refuse")
    (result,) = tool_results(body)
    assert result["ok"] is False and "not in tools.exec.shell_allowlist" in result["error"]
    assert body["ok"] and body["final_answer"] == "refused"


def test_exec_readiness_and_metrics(exec_proxy, upstream):
    import httpx

    from tests.harness import Reply, call

    upstream.script("tx-metrics", Reply(tool_calls=[call("exec_shell", {"command": "true"}, "a"), call("exec_shell", {"command": "rm x"}, "b")]),
                    Reply(text="ok"))
    agent_run(exec_proxy, "tx-metrics")
    ready = httpx.get(f"{exec_proxy.base_url}/ready", timeout=10).json()
    assert ready["checks"]["exec_tools"] == {"ok": True}
    text = httpx.get(f"{exec_proxy.base_url}/metrics", headers=exec_proxy.headers, timeout=10).text
    assert 'proxy_ext_tool_calls_total{backend="exec",outcome="ok",tool="exec_shell"}' in text
    assert 'proxy_ext_tool_calls_total{backend="exec",outcome="refused",tool="exec_shell"}' in text


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox user differs from the proxy's only when root")
def test_sandbox_problem_names_an_unusable_setup(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert "cannot enter" in sandbox_problem(ExecToolConfig(enabled=True, tmp_dir=str(private)))
    assert "does not exist" in sandbox_problem(ExecToolConfig(enabled=True, tmp_dir=str(tmp_path / "missing")))
    assert sandbox_problem(ExecToolConfig(enabled=True, run_as_user="no-such-user-x")) == "tools.exec.run_as_user does not exist on this system"
    assert "no python interpreter" in sandbox_problem(ExecToolConfig(enabled=True, python_executable=str(private / "python3")))


async def test_output_handed_to_an_outside_process_does_not_hang_the_call(unrestricted):
    """The tool passes its stdout to a process outside its tree: the call still ends promptly."""
    import socket as socket_module

    holder_path = f"/tmp/proxy-ext-test-holder-{os.getpid()}-{random.randint(0, 10**9)}"
    server = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
    server.bind(holder_path)
    os.chmod(holder_path, 0o777)
    server.listen(1)
    server.setblocking(False)
    code = f"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({holder_path!r})
socket.send_fds(s, [b'x'], [1])
print('handed over', flush=True)
"""
    loop = asyncio.get_running_loop()
    held: list[int] = []

    async def accept() -> None:
        conn, _ = await loop.sock_accept(server)
        conn.setblocking(True)
        _msg, fds, _flags, _addr = await asyncio.to_thread(socket_module.recv_fds, conn, 16, 4)
        held.extend(fds)
        conn.close()

    acceptor = asyncio.ensure_future(accept())
    started = time.monotonic()
    try:
        result = await unrestricted.invoke("exec_python", {"code": code, "timeout_s": 5}, CTX)
        await asyncio.wait_for(acceptor, 5)
    finally:
        server.close()
        os.unlink(holder_path)
        for fd in held:
            os.close(fd)
    assert result.ok and result.content["stdout"] == "handed over\n" and held
    assert time.monotonic() - started < 4


async def test_clean_up_never_follows_a_symlink_the_tool_left(unrestricted, tmp_path):
    """The tool replaces its working directory with a symlink to a directory it must not touch."""
    import tempfile

    victim = tempfile.mkdtemp(prefix="proxy-ext-test-victim-", dir="/tmp")
    try:
        with open(os.path.join(victim, "keep"), "w") as fh:
            fh.write("x")
        os.chmod(victim, 0o755)
        base_mode = os.stat(unrestricted.config.tmp_dir).st_mode
        command = f'd="$PWD"; cd /; mv "$d" "$d.moved" && ln -s {victim} "$d" && echo swapped'
        out = await shell(unrestricted, command)
        assert out["stdout"] == "swapped\n", out
        assert os.path.exists(os.path.join(victim, "keep"))
        assert os.stat(victim).st_mode & 0o777 == 0o755
        assert os.stat(unrestricted.config.tmp_dir).st_mode == base_mode
        leftovers = os.listdir(unrestricted.config.tmp_dir)
        assert all(name.endswith(".moved") for name in leftovers), leftovers  # the tool's own rename
    finally:
        import shutil

        shutil.rmtree(victim, ignore_errors=True)
        for name in os.listdir(unrestricted.config.tmp_dir):
            shutil.rmtree(os.path.join(unrestricted.config.tmp_dir, name), ignore_errors=True)


def test_an_idle_supervisor_that_loses_the_race_for_a_call_does_not_block():
    # Several idle supervisors wake for one call; those that do not get it must go back to poll
    # (and retire when idle), not block in recvmsg for good: socket.recv_fds ignores MSG_DONTWAIT
    # on Python 3.11, and a pool grown by a burst never shrank back.
    import socket

    from proxy_ext.tools.exec.forkserver import receive_call

    def hung(signum, frame):
        raise TimeoutError("receive_call waited for a message")

    here, there = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        with pytest.raises(BlockingIOError):
            receive_call(here)
        reader, writer = os.pipe()
        socket.send_fds(there, [b"c"], [writer])
        msg, fds = receive_call(here)
        assert msg == b"c" and len(fds) == 1
        os.write(fds[0], b"x")
        assert os.read(reader, 1) == b"x"
        for fd in (reader, writer, *fds):
            os.close(fd)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        here.close()
        there.close()
