"""Identity glue for durable runs, which outlive their request: the caller's identity is kept
(sealed with the proxy's own key, as LiteLLM seals secrets in its database) and compared by a hash.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dump_identity", "identity_owner", "load_identity", "seal", "unseal"]


def seal(text: str) -> str:
    """``text`` encrypted with the proxy's key (``LITELLM_SALT_KEY``, else the master key)."""
    from litellm.proxy.common_utils.encrypt_decrypt_utils import encrypt_value_helper

    return str(encrypt_value_helper(text))


def unseal(sealed: str) -> str | None:
    """The text :func:`seal` sealed (None: not readable with this proxy's key)."""
    from litellm.proxy.common_utils.encrypt_decrypt_utils import decrypt_value_helper

    return decrypt_value_helper(sealed, key="proxy_ext run caller", exception_type="debug")


def dump_identity(identity: Any) -> dict[str, Any] | None:
    """A ``UserAPIKeyAuth`` as JSON-able data (None stays None)."""
    if identity is None:
        return None
    return dict(identity.model_dump(mode="json", exclude={"parent_otel_span"}, exclude_none=True))


def load_identity(data: dict[str, Any] | None) -> Any:
    """The ``UserAPIKeyAuth`` :func:`dump_identity` dumped."""
    if data is None:
        return None
    from litellm.proxy._types import UserAPIKeyAuth

    return UserAPIKeyAuth.model_validate(data)


def identity_owner(identity: Any) -> tuple[str, str | None, bool]:
    """(owner hash, team id, is proxy admin) of a caller: the owner is stable for one key."""
    import hashlib

    from litellm.proxy._types import LitellmUserRoles

    if identity is None:
        return "anonymous", None, False
    basis = getattr(identity, "token", None) or getattr(identity, "api_key", None) or getattr(identity, "key_alias", None) or ""
    owner = hashlib.sha256(f"proxy_ext-run-owner:{basis}".encode()).hexdigest()[:32]
    admin = getattr(identity, "user_role", None) in (LitellmUserRoles.PROXY_ADMIN, LitellmUserRoles.PROXY_ADMIN.value)
    return owner, getattr(identity, "team_id", None), bool(admin)
