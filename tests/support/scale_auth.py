"""Many keys without a database, for the per-key run limit tests: any ``sk-scale-<name>`` is a
key of its own with every model (``general_settings.custom_auth``); the master key stays an admin."""

from __future__ import annotations

import os

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyException, UserAPIKeyAuth


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == os.environ.get("LITELLM_MASTER_KEY"):
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN, key_alias="master")
    if not api_key.startswith("sk-scale-"):
        raise ProxyException(message="invalid test key", type="auth_error", param="api_key", code=401)
    return UserAPIKeyAuth(api_key=api_key, key_alias=api_key.removeprefix("sk-scale-"), user_role=LitellmUserRoles.INTERNAL_USER)
