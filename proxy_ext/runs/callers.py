"""A durable run's caller: its headers and identity, sealed with the proxy's key into the run's
record when it is created, and unsealed by whichever worker executes it (its model calls are made
as that caller)."""

from __future__ import annotations

import json
from typing import Any

from proxy_ext import litellm_adapter as adapter
from proxy_ext.agent import facade
from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.model_client import forwardable_headers
from proxy_ext.runs.store import RunRecord

__all__ = ["new_record", "unseal_caller"]


def new_record(run_id: str, status: str, payload: dict[str, Any], caller: facade.Caller) -> RunRecord:
    """A new run of ``payload`` (the ``/agent/run`` body), owned by ``caller``'s key."""
    owner, team_id, _ = adapter.identity_owner(caller.identity)
    sealed = adapter.seal(json.dumps({"headers": forwardable_headers(caller.headers), "server": caller.server,
                                      "scheme": caller.scheme, "identity": adapter.dump_identity(caller.identity),
                                      "client": caller.client}))
    request = {k: v for k, v in payload.items() if k != "background"}
    return RunRecord(id=run_id, owner=owner, team_id=team_id, status=status, request=request, caller=sealed)


def unseal_caller(record: RunRecord) -> facade.Caller:
    """The caller the run was created by (500 when this proxy's key cannot unseal it)."""
    text = adapter.unseal(record.caller)
    if text is None:
        raise AgentRequestError("the run's credentials cannot be read with this proxy's key "
                                "(LITELLM_SALT_KEY / master key differ between instances?)", status=500)
    data = json.loads(text)
    server = tuple(data["server"]) if data.get("server") else None
    client = tuple(data["client"]) if data.get("client") else None
    return facade.Caller(data["headers"], server, data.get("scheme") or "http",  # type: ignore[arg-type]
                         adapter.load_identity(data.get("identity")), client)  # type: ignore[arg-type]
