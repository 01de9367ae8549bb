"""One JSONL record per agent run, with secrets redacted.

Safe with several workers (``--num_workers``) and concurrent runs: each record is one ``write()`` of
one line to a file opened with ``O_APPEND`` under an exclusive ``flock``, so lines never interleave.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from proxy_ext.credentials import SECRET_ENV_NAME, SECRET_FIELD_NAME

__all__ = ["Redactor", "TraceRecorder", "TraceWriter", "environment_secrets"]

REDACTED = "[REDACTED]"
_SECRET_KEYS = SECRET_FIELD_NAME
_BUILTIN_PATTERNS = [
    r"sk-[A-Za-z0-9_\-]{8,}",                 # OpenAI / LiteLLM style keys
    r"(?i)bearer\s+[A-Za-z0-9._\-+/=]{8,}",   # bearer tokens inside text
    r"AKIA[0-9A-Z]{16}",                      # AWS access key ids
]


_SECRET_ENV_NAMES = SECRET_ENV_NAME


@functools.lru_cache(maxsize=1)
def environment_secrets() -> tuple[str, ...]:
    """Values of this process's secret-looking environment variables (read once: the proxy's
    environment does not change while it runs)."""
    return tuple(v for k, v in os.environ.items() if _SECRET_ENV_NAMES.search(k) and len(v) >= 8)


class Redactor:
    """Replaces secret-looking keys' values and secret patterns in strings."""

    def __init__(self, extra_patterns: list[str] | None = None, literals: list[str] | None = None) -> None:
        self.patterns = [re.compile(p) for p in [*_BUILTIN_PATTERNS, *(extra_patterns or [])]]
        self.literals = [s for s in (literals or []) if s and len(s) >= 6]

    def text(self, value: str) -> str:
        for literal in self.literals:
            value = value.replace(literal, REDACTED)
        for pattern in self.patterns:
            value = pattern.sub(REDACTED, value)
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) and v not in (None, "", 0) and not isinstance(v, (dict, list, bool, int, float)) else self(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


class TraceWriter:
    """Appends redacted run records to ``path``."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor

    def _write(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)  # closing releases the lock

    async def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(self.redactor(record), default=str, separators=(",", ":")) + "\n").encode()
        await asyncio.to_thread(self._write, line)


class TraceRecorder:
    """The JSONL trace consumer of a run's events: collects the steps and, when the run ends
    (also when it is cancelled), writes one record. :meth:`flush` waits for the write."""

    def __init__(self, writer: TraceWriter, request: dict[str, Any], trace_id: str) -> None:
        self.writer = writer
        self.request = request
        self.trace_id = trace_id
        self.started_at = time.time()
        self.steps: list[dict[str, Any]] = []
        self._write: asyncio.Task[None] | None = None

    def __call__(self, event: Any) -> None:
        from proxy_ext.agent import events as ev

        if isinstance(event, ev.RunStarted):
            self.started_at = event.at
            self.request["tools"] = list(event.tools)
        elif isinstance(event, ev.ModelTurnFinished):
            if event.ok:
                self.steps.append({"type": "model_turn", "model": event.model, "ok": True, "iteration": event.iteration,
                                   "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
                                   "cost_usd": event.cost_usd, "duration_ms": event.duration_ms, "tool_calls": event.tool_calls})
            else:
                self.steps.append({"type": "model_turn", "model": event.model, "ok": False, "status": event.status,
                                   "error": event.error, "duration_ms": event.duration_ms})
        elif isinstance(event, ev.ToolCallFinished):
            self.steps.append({"type": "tool_call", "id": event.id, "name": event.name, "ok": event.ok,
                               "duration_ms": event.duration_ms, **({"error": event.error} if not event.ok else {})})
        elif isinstance(event, ev.Escalated):
            self.steps.append({"type": "escalation", "from": event.from_model, "reason": event.reason, "detail": event.detail})
        elif isinstance(event, ev.RunFinished):
            self.finish(event.envelope.to_dict() if event.envelope is not None else None, event.at)

    def finish(self, envelope: dict[str, Any] | None, at: float | None = None) -> None:
        """Write the record (once): ``envelope`` None means the run was cancelled."""
        if self._write is not None:
            return
        record = {"trace_id": self.trace_id, "started_at": self.started_at, "finished_at": at or time.time(),
                  "cancelled": envelope is None, "worker_pid": os.getpid(), "request": self.request,
                  "steps": self.steps, "envelope": envelope}
        self._write = asyncio.get_running_loop().create_task(self.writer.write(record), name="proxy_ext.trace_write")

    async def flush(self) -> None:
        """Wait for the record to be written (shielded: a cancelled caller still leaves it)."""
        if self._write is not None:
            await asyncio.shield(self._write)
