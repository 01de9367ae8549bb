"""The MCP backend's session pool (proxy_ext.tools.mcp.backend._Pool): its accounting of open
sessions, with stand-in sessions (no LiteLLM: the adapter's ``mcp_open`` is replaced)."""

from __future__ import annotations

import asyncio

from proxy_ext import litellm_adapter as adapter
from proxy_ext.tools.mcp.backend import _Pool


class _Session:
    def __init__(self) -> None:
        self.reusable = True
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.reusable = False


def test_sessions_that_end_while_idle_give_their_slot_back(monkeypatch):
    # A session that ended while idle (an HTTP server's stream closed, a stdio server gone) was
    # discarded without its slot: after `size` of them every acquire waited for good.
    opened: list[_Session] = []

    async def mcp_open(server, timeout_s):
        opened.append(_Session())
        return object(), opened[-1]

    monkeypatch.setattr(adapter, "mcp_open", mcp_open)

    async def scenario() -> None:
        pool = _Pool(server=object(), size=2, timeout_s=1)
        for round_ in range(5):
            pair = await asyncio.wait_for(pool.acquire(), 1)
            await pool.release(pair, broken=False)
            pair[1].reusable = False  # it ends while idle
            assert pool.open == 1, (round_, pool.open)
        pairs = [await asyncio.wait_for(pool.acquire(), 1) for _ in range(2)]  # both slots still there
        assert len({id(p[1]) for p in pairs}) == 2 and pool.open == 2

    asyncio.run(scenario())
    assert len(opened) == 7 and all(s.closed for s in opened[:5])
