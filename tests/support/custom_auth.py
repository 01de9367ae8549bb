"""Key-scoped identities without a database, for tests: ``general_settings.custom_auth``.

Keys look like ``sk-test-<alias>``; the identities below say which models, routes and limits each
has. The master key stays an admin. Used with ``general_settings.custom_auth_run_common_checks`` and
``litellm_settings.enable_post_custom_auth_checks`` so the proxy's own model-access, rate-limit and
route checks run on these identities as on database-backed keys.
"""

from __future__ import annotations

import os

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth

AGENT_ROUTES = ["/agent/run", "/v1/chat/completions", "/chat/completions", "/ready"]

IDENTITIES = {
    # May use only fake/agent-allowed.
    "sk-test-limited": {"models": ["fake/agent-allowed"], "allowed_routes": AGENT_ROUTES},
    # Every model, two requests per minute.
    "sk-test-rpm": {"models": [], "allowed_routes": AGENT_ROUTES, "rpm_limit": 2},
    # May use the agent profile model, but none of the models the agent itself calls.
    "sk-test-agent-only": {"models": ["mini-agent/calc"], "allowed_routes": AGENT_ROUTES},
    # Any model, and the durable-run routes too (it did not create the runs it asks about).
    "sk-test-runs-other": {"models": [], "allowed_routes": [*AGENT_ROUTES, "/agent/runs", "/agent/runs/*"]},
    # A key whose allowed routes do not include /agent/run.
    "sk-test-chat-only": {"models": [], "allowed_routes": ["/v1/chat/completions", "/chat/completions"]},
}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == os.environ.get("LITELLM_MASTER_KEY"):
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN, key_alias="master")
    identity = IDENTITIES.get(api_key)
    if identity is None:
        raise ProxyException(message="invalid test key", type="auth_error", param="api_key", code=401)
    return UserAPIKeyAuth(api_key=api_key, key_alias=api_key.removeprefix("sk-test-"), user_role=LitellmUserRoles.INTERNAL_USER, **identity)
