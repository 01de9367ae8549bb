"""A small MCP server (the ``mcp`` SDK's MCPServer) for the MCP tool tests' fault cases.

``python mcp_faulty.py EVENTS_DIR [stdio|streamable-http PORT]``. Each tool appends what happened
to ``EVENTS_DIR/events.jsonl`` (starts, cancellations, exits), so tests can see from outside what
the server saw.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

EVENTS = Path(sys.argv[1]) / "events.jsonl"
server = MCPServer("faulty")


def note(kind: str, **fields: object) -> None:
    with EVENTS.open("a") as handle:
        handle.write(json.dumps({"event": kind, "pid": os.getpid(), "at": time.time(), **fields}) + "\n")


@server.tool()
async def step(n: int) -> str:
    """Step number n of a multi-round task: returns the next step to take."""
    note("step", n=n)
    return f"step {n} done; next: {n + 1}" if n < 3 else "all 3 steps done"


@server.tool()
async def slow(seconds: float, tag: str = "") -> str:
    """Wait ``seconds`` seconds, then answer."""
    note("slow_started", tag=tag)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        note("slow_cancelled", tag=tag)
        raise
    note("slow_finished", tag=tag)
    return f"slept {seconds}"


@server.tool()
async def crash() -> str:
    """Kill this server process mid-call."""
    note("crash")
    os._exit(17)


@server.tool()
async def fail(message: str = "boom") -> str:
    """Fail with ``message`` (an MCP error result the model reads)."""
    raise ToolError(message)


@server.tool()
async def huge(kib: int) -> str:
    """Return ``kib`` KiB of text."""
    return "x" * (kib * 1024)


@server.tool()
async def whoami() -> str:
    """This server process's id."""
    return str(os.getpid())


if __name__ == "__main__":
    note("started")
    atexit.register(note, "exited")
    if len(sys.argv) > 2 and sys.argv[2] == "streamable-http":
        server.run("streamable-http", port=int(sys.argv[3]), host="127.0.0.1")
    else:
        server.run("stdio")
