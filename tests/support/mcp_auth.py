"""Key-scoped identities for the MCP tool tests (``general_settings.custom_auth``, no database).

The master key stays an admin (every MCP server). The other keys carry LiteLLM object permissions
naming the MCP servers (and tools) they may use, as a database-backed key would.
"""

from __future__ import annotations

import os

from fastapi import Request
from litellm.proxy._types import LiteLLM_ObjectPermissionTable, LitellmUserRoles, ProxyException, UserAPIKeyAuth

ROUTES = ["/agent/run", "/v1/chat/completions", "/chat/completions"]

PERMISSIONS = {
    # Only the fault server.
    "sk-mcp-faulty-only": LiteLLM_ObjectPermissionTable(object_permission_id="p1", mcp_servers=["faulty"]),
    # The reference server, but only its get-sum tool.
    "sk-mcp-sum-only": LiteLLM_ObjectPermissionTable(object_permission_id="p2", mcp_servers=["everything"],
                                                     mcp_tool_permissions={"everything": ["get-sum"]}),
}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == os.environ.get("LITELLM_MASTER_KEY"):
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN, key_alias="master")
    permission = PERMISSIONS.get(api_key)
    if permission is None:
        raise ProxyException(message="invalid test key", type="auth_error", param="api_key", code=401)
    return UserAPIKeyAuth(api_key=api_key, key_alias=api_key.removeprefix("sk-mcp-"), user_role=LitellmUserRoles.INTERNAL_USER,
                          models=[], allowed_routes=ROUTES, object_permission=permission)
