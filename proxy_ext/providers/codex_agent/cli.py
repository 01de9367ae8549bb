"""CLI mode: run ``codex exec --json`` and read its JSONL events.

Command: ``codex exec --json --skip-git-repo-check --sandbox <sandbox> --cd <workspace> [-m M]
[-c k=v …] -`` with the rendered prompt on stdin. The process runs under a small supervisor
(``reaper``) in a process group of its own with a minimal environment (``cli.env_allowlist`` +
``cli.extra_env``); the whole group is killed on timeout, on client disconnect (the stream is closed
or cancelled) and after the run, and every process of it is reaped.
Without a configured ``cli.workspace`` each call gets a fresh temporary directory, removed after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from proxy_ext.config import CodexAgentCliConfig
from proxy_ext import subreaper
from proxy_ext.providers.codex_agent import errors
from proxy_ext.providers.errors import not_retried
from proxy_ext.providers.codex_agent.events import CodexRun
from proxy_ext.providers.codex_agent.settings import CallSettings
from proxy_ext.request_context import cancel_on_disconnect, client_gone
from proxy_ext.state import Runtime

__all__ = ["build_command", "child_env", "iterate_in_thread", "resolve_binary", "run_events"]

STDERR_TAIL_BYTES = 4096
T = TypeVar("T")


def resolve_binary(binary: str, runtime: Runtime) -> str | None:
    """Absolute path of the codex executable, or None when it is missing or not executable.

    A value with a ``/`` is a path (relative paths are relative to the config file's directory);
    a bare name is looked up on the proxy's ``PATH``. ``/ready`` and ``proxy-ext doctor`` use this too.
    """
    if "/" in binary:
        path = runtime.resolve_path(binary)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(binary)


def child_env(cli: CodexAgentCliConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment codex gets: allow-listed variables of the proxy plus ``extra_env``; nothing else."""
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in cli.env_allowlist if name in source}
    env.update(cli.extra_env)
    return env


def build_command(binary: str, cli: CodexAgentCliConfig, workspace: str, model: str | None) -> list[str]:
    """The argv of one run (the prompt goes to stdin, marked by the final ``-``)."""
    command = [binary, "exec", "--json", "--skip-git-repo-check", "--sandbox", cli.sandbox, "--cd", workspace]
    if model:
        command += ["-m", model]
    for override in cli.config_overrides:
        command += ["-c", override]
    return [*command, "-"]


def _cli_model(settings: CallSettings) -> str | None:
    # The model named after the prefix (codex_cli_agent/<model>) unless it is "default";
    # then cli.model; None lets codex use its own default.
    if settings.model and settings.model != "default":
        return settings.model
    return settings.config.cli.model


def _failure_status(message: str) -> int:
    lowered = message.lower()
    if "429" in lowered or "rate limit" in lowered:
        return 429
    return 502


def _tell(process: asyncio.subprocess.Process, sig: int) -> None:
    if process.returncode is None:  # not reaped yet, so the pid is still ours
        subreaper.tell(process.pid, sig)


async def _stop(process: asyncio.subprocess.Process, grace_s: float) -> None:
    """End codex and everything under it: SIGTERM, ``grace_s`` to exit, then SIGKILL; the
    supervisor reaps them all and exits (SIGKILLed itself only if it does not within 5 s)."""
    if grace_s > 0:
        _tell(process, subreaper.STOP)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), grace_s)
    _tell(process, subreaper.KILL_NOW)  # also any grandchild left behind by a finished codex
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(process.wait(), 5.0)
    if process.returncode is None:
        process.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 5.0)


def _kill_on_hang_up(process: asyncio.subprocess.Process) -> Callable[[], None]:
    """Kill codex's process group when the client of the current request hangs up, or when the
    request's ASGI call ends first (LiteLLM neither cancels a non-streamed call whose client left nor
    closes a stream whose client left while a response hook wraps it). Returns the undo."""
    hang_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    hang_up.add_done_callback(lambda f: _tell(process, subreaper.KILL_NOW) if f.cancelled() else None)
    unregister = cancel_on_disconnect(cast("asyncio.Task[None]", hang_up))

    def undo() -> None:
        unregister()
        if not hang_up.done():
            hang_up.set_result(None)

    return undo


async def _feed_stdin(process: asyncio.subprocess.Process, prompt: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(prompt)
        await process.stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.close()


async def _drain_stderr(process: asyncio.subprocess.Process, tail: bytearray) -> None:
    assert process.stderr is not None
    while chunk := await process.stderr.read(65536):
        tail.extend(chunk)
        del tail[:-STDERR_TAIL_BYTES]


async def _stdout_texts(process: asyncio.subprocess.Process, run: CodexRun, max_bytes: int, deadline: float, model: str) -> AsyncGenerator[str, None]:
    """Feed codex's JSONL events into ``run`` until EOF or a failure event; yield new answer text.
    Raises asyncio.TimeoutError past ``deadline`` and a 502 beyond ``max_bytes`` of output."""
    assert process.stdout is not None
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError
        try:
            line = await asyncio.wait_for(process.stdout.readline(), remaining)
        except ValueError:  # one line longer than the limit
            line = b""
            total = max_bytes + 1
        total += len(line)
        if total > max_bytes:
            raise errors.from_status(
                502, f"codex produced more than {max_bytes} bytes of output; the run was stopped "
                "(proxy_ext.providers.codex_agent.cli.max_output_bytes)", model,
            )
        if not line:
            break
        text = run.feed_line(line)
        if text:
            yield text
        if run.failure:
            break


async def run_events(settings: CallSettings, prompt: str, run: CodexRun, call_timeout: Any = None) -> AsyncGenerator[str, None]:
    """Run codex for ``prompt``, feeding its events into ``run``; yield new agent-message text.

    Raises the LiteLLM error for a missing binary (503), a timeout (408), oversized output (502), a
    failed run (502, or 429 when codex says it was rate limited), with codex's own message, and a
    client that hung up (499, which LiteLLM's Router does not retry; a retry or fallback for that client
    does not start codex again).
    """
    cli = settings.config.cli
    if client_gone():  # e.g. a retry or fallback LiteLLM runs after the client left
        raise _client_left(settings.model, "codex was not started")
    binary = _binary(settings)
    limit_s = cli.timeout_s
    if isinstance(call_timeout, (int, float)) and call_timeout > 0:
        limit_s = min(limit_s, float(call_timeout))
    own_workspace = cli.workspace is None
    workspace = tempfile.mkdtemp(prefix="codex-agent-") if own_workspace else str(settings.runtime.resolve_path(cli.workspace or "."))
    if not Path(workspace).is_dir():
        raise errors.from_status(503, f"the codex workspace {workspace} is not a directory (proxy_ext.providers.codex_agent.cli.workspace)", settings.model)
    command = subreaper.supervised(build_command(binary, cli, workspace, _cli_model(settings)))
    stderr_tail = bytearray()
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env(cli), cwd=workspace, start_new_session=True, limit=cli.max_output_bytes,
    )
    forget_client = _kill_on_hang_up(process)
    helpers = [asyncio.ensure_future(_feed_stdin(process, prompt.encode())), asyncio.ensure_future(_drain_stderr(process, stderr_tail))]
    deadline = time.monotonic() + limit_s
    finished = False
    try:
        async with contextlib.aclosing(_stdout_texts(process, run, cli.max_output_bytes, deadline, settings.model)) as texts:
            async for text in texts:
                yield text
        await asyncio.wait_for(process.wait(), max(0.1, deadline - time.monotonic()))
        finished = True
    except asyncio.TimeoutError:
        await _stop(process, cli.kill_grace_s)
        # Not retried by the Router: the run used all its time, may have changed files in its
        # workspace, and the same prompt would most likely run out of time again.
        raise not_retried(errors.timeout(f"codex did not finish within {limit_s:g}s; its process group was killed", settings.model)) from None
    finally:
        forget_client()
        if not finished:
            # Cancelled (client disconnect), closed early or failed: no grace period, kill now,
            # synchronously, so it happens even if this clean-up is cancelled again below.
            _tell(process, subreaper.KILL_NOW)
        else:  # let the stderr reader catch the last lines (used in the error message)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(helpers[1]), 1.0)
        for helper in helpers:
            helper.cancel()
        try:
            await asyncio.shield(_stop(process, 0))  # reap the leader; SIGKILL any leftover of the group
        finally:
            if own_workspace:
                shutil.rmtree(workspace, ignore_errors=True)
    if run.answer is None and client_gone():  # killed by the hang-up: not codex's failure
        raise _client_left(settings.model, "its codex run was killed")
    fatal = run.fatal
    if fatal:
        raise errors.from_status(_failure_status(fatal), f"codex run failed: {fatal}", settings.model)
    if run.answer is None:
        detail = stderr_tail.decode(errors="replace").strip()[-1000:] or "no output"
        raise errors.from_status(502, f"codex exited with status {process.returncode} without an answer: {detail}", settings.model)


def _binary(settings: CallSettings) -> str:
    cli = settings.config.cli
    binary = resolve_binary(cli.binary, settings.runtime)
    if binary is None:
        raise errors.from_status(503, f"the codex CLI is not available: {cli.binary!r} is not an executable file or not on PATH; "
                                 "install it (npm install -g @openai/codex) or set proxy_ext.providers.codex_agent.cli.binary", settings.model)
    return binary


def _client_left(model: str, what: str) -> Exception:
    return errors.from_status(499, f"the client closed the request; {what}", model)


def iterate_in_thread(factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate an async generator from blocking code, on a private event loop in a worker thread.

    Closing the returned iterator early cancels the generator (so its clean-up runs, e.g. killing
    a process group) and waits for the thread.
    """
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.Task[None]] = {}

    async def pump() -> None:
        try:
            async for item in factory():
                items.put(("item", item))
        except asyncio.CancelledError:
            items.put(("done", None))
            raise
        except BaseException as exc:  # handed to the consuming thread
            items.put(("error", exc))
            return
        items.put(("done", None))

    def runner() -> None:
        asyncio.set_event_loop(loop)
        holder["task"] = loop.create_task(pump())
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(holder["task"])
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=runner, name="codex-agent-cli", daemon=True)
    thread.start()
    ready.wait()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        if thread.is_alive():
            # The runner may be closing its loop right now: then there is nothing left to cancel.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(holder["task"].cancel)
            thread.join(timeout=30)
