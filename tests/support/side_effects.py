"""Local agent tools with a visible side effect, for the durable-run tests: each call appends a line
to the file named by ``SIDE_EFFECTS_PATH`` (so a test sees whether, and how often, a tool ran)."""

from __future__ import annotations

import asyncio
import json
import os


async def record_note(note: str, seconds: float = 0.0) -> str:
    """Write ``note`` down (after waiting ``seconds``).

    Args:
        note: What to write down.
        seconds: How long to wait first.
    """
    if seconds:
        await asyncio.sleep(seconds)
    with open(os.environ["SIDE_EFFECTS_PATH"], "a") as handle:
        handle.write(json.dumps({"note": note, "pid": os.getpid()}) + "\n")
    return f"noted {note}"
