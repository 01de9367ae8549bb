"""What ``proxy-ext doctor`` says about the MCP servers the agent would use (from the config file:
the doctor does not start the proxy, so LiteLLM's gateway is not loaded)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from proxy_ext.config import McpToolConfig

__all__ = ["mcp_report"]

_TRUE = {"1", "true", "yes", "on"}


def mcp_report(document: Mapping[str, Any], config: McpToolConfig, env: Mapping[str, str] | None = None) -> tuple[str, list[str], list[str]]:
    """(capability detail, warnings, problems) for the config's ``mcp_servers:``."""
    env = os.environ if env is None else env
    servers = document.get("mcp_servers") or {}
    if not isinstance(servers, dict) or not servers:
        return "", [], []
    if config.servers is not None:
        unknown = sorted(set(config.servers) - set(servers) - {str((v or {}).get("alias")) for v in servers.values() if isinstance(v, dict)})
        problems = [f"tools.mcp.servers names {name!r}, which is not in mcp_servers" for name in unknown]
        servers = {k: v for k, v in servers.items() if k in config.servers or (isinstance(v, dict) and v.get("alias") in config.servers)}
    else:
        problems = []
    warnings: list[str] = []
    described = []
    stdio_on = env.get("LITELLM_ENABLE_MCP_STDIO", "").strip().lower() in _TRUE
    for name, entry in servers.items():
        entry = entry if isinstance(entry, dict) else {}
        transport = str(entry.get("transport") or ("stdio" if entry.get("command") else "http"))
        described.append(f"{name} ({transport})")
        if transport == "stdio":
            command = str(entry.get("command") or "")
            if not stdio_on:
                warnings.append(f"mcp_servers.{name}: stdio servers run only with LITELLM_ENABLE_MCP_STDIO=true in the proxy's environment")
            if not command or (shutil.which(command) is None and not os.access(command, os.X_OK)):
                problems.append(f"mcp_servers.{name}: command {command!r} is not found")
        elif not entry.get("url"):
            problems.append(f"mcp_servers.{name}: {transport} transport needs a url")
    return ", ".join(described), warnings, problems
