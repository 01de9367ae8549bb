"""MCP servers as agent tools, through LiteLLM's MCP gateway (``mcp_servers:``; docs/tools.md)."""

from proxy_ext.tools.mcp.backend import McpToolBackend, ServerState

__all__ = ["McpToolBackend", "ServerState"]
