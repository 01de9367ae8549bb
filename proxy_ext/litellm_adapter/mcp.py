"""LiteLLM's MCP gateway for the agent's MCP tools.

Part of :mod:`proxy_ext.litellm_adapter` (import the names from there); LiteLLM only inside the
functions.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "mcp_allowed_server_ids", "mcp_call_tool", "mcp_list_tools", "mcp_open", "mcp_permitted_tools", "mcp_server_label",
    "mcp_servers", "mcp_tool_name",
]


# ------------------------------------------------------------------------------------- MCP glue
# The agent's MCP tools use LiteLLM's MCP gateway: its servers (``mcp_servers:``, transports,
# auth headers, aliases, tool prefixes), its permission rules for a key, and its MCP client with
# a persistent upstream session (one server process / connection reused across calls).


def mcp_servers() -> list[Any]:
    """The MCP servers of LiteLLM's gateway (``mcp_servers:`` in the config), as LiteLLM's
    ``MCPServer`` objects; [] when the gateway is not loaded."""
    try:
        from litellm.proxy._experimental.mcp_server.mcp_server_manager import global_mcp_server_manager
    except ImportError:
        return []
    return list(global_mcp_server_manager.get_registry().values())


def mcp_server_label(server: Any) -> str:
    """The name LiteLLM gives a server in tool names (its alias, else its name)."""
    from litellm.proxy._experimental.mcp_server.utils import get_server_prefix

    return str(get_server_prefix(server))


def mcp_tool_name(server: Any, tool: str) -> str:
    """LiteLLM's prefixed tool name (``<server>-<tool>``)."""
    from litellm.proxy._experimental.mcp_server.utils import add_server_prefix_to_name

    return str(add_server_prefix_to_name(tool, mcp_server_label(server)))


async def mcp_allowed_server_ids(identity: Any) -> set[str]:
    """The MCP servers the key (``UserAPIKeyAuth``) may use, as LiteLLM decides for its own MCP routes."""
    from litellm.proxy._experimental.mcp_server.mcp_server_manager import global_mcp_server_manager

    return set(await global_mcp_server_manager.get_allowed_mcp_servers(user_api_key_auth=identity))


async def mcp_permitted_tools(tools: list[Any], server: Any, identity: Any) -> list[Any]:
    """The subset of ``tools`` (MCP ``Tool`` objects named with LiteLLM's prefix) the key may call
    on ``server``: the server's ``allowed_tools``/``disallowed_tools`` and the key's and team's
    tool permissions, exactly as LiteLLM filters its own tool listings."""
    from litellm.proxy._experimental.mcp_server.operations import filter_tools_by_allowed_tools, filter_tools_by_key_team_permissions

    allowed = filter_tools_by_allowed_tools(tools, server)
    return list(await filter_tools_by_key_team_permissions(allowed, server.server_id, identity))


async def mcp_open(server: Any, timeout_s: float) -> tuple[Any, Any]:
    """(LiteLLM's MCP client for ``server``, a persistent session of it): the server's process or
    connection stays up across calls (stdio servers need ``LITELLM_ENABLE_MCP_STDIO``)."""
    from litellm.proxy._experimental.mcp_server.mcp_server_manager import global_mcp_server_manager

    client = await global_mcp_server_manager.create_mcp_client(server)
    client.timeout = timeout_s
    return client, client.open_persistent_session()


async def mcp_list_tools(session: Any, timeout_s: float) -> list[Any]:
    """The server's tools (MCP ``Tool`` objects, names as the server gives them)."""
    from litellm.experimental_mcp_client.tools import list_tools_with_pagination

    async def operation(raw: Any) -> Any:
        return await list_tools_with_pagination(raw, listing_deadline=timeout_s)

    return list(await session.run(operation, quiet_on_error=True))


async def mcp_call_tool(client: Any, session: Any, name: str, arguments: dict[str, Any]) -> Any:
    """Call ``name`` on the persistent session; the MCP ``CallToolResult`` (failures of the call
    itself come back as ``isError`` results, as LiteLLM returns them)."""
    from mcp.types import CallToolRequestParams

    return await client.call_tool(CallToolRequestParams(name=name, arguments=arguments), persistent_session=session)
