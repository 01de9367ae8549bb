"""Durable agent runs (``proxy_ext.runs``): background runs, resumable event streams, cancel, and
approval before tool calls, stored in SQLite (one box) or Redis (several workers and instances).

- :mod:`proxy_ext.runs.store` — the run record, the store interface and the SQLite store;
- :mod:`proxy_ext.runs.redis_store` — the Redis store;
- :mod:`proxy_ext.runs.recorder` — the event consumer that writes a run's events and checkpoints;
- :mod:`proxy_ext.runs.callers` — a run's caller, sealed into its record and unsealed by its worker;
- :mod:`proxy_ext.runs.service` — submit, park, cancel, decide and the per-worker executor;
- :mod:`proxy_ext.runs.routes` — ``/agent/runs`` and its sub-routes.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from proxy_ext.exceptions import ProxyExtError
from proxy_ext.runs.service import DurableRuns
from proxy_ext.runs.store import RunRecord, RunStore, SqliteRunStore
from proxy_ext.state import Runtime

__all__ = ["DurableRuns", "RunRecord", "RunStore", "RunsUnavailable", "durable_runs", "open_store", "redis_url"]


class RunsUnavailable(ProxyExtError):
    """The run store cannot be opened or reached (503)."""

    status = 503


_lock = threading.Lock()
_instance: DurableRuns | None = None


def redis_url(runtime: Runtime, env: Any = os.environ) -> str | None:
    """The Redis of ``store: redis``: ``proxy_ext.runs.redis_url``, else the Redis LiteLLM is
    given (``litellm_settings.cache_params``), else ``REDIS_URL`` / ``REDIS_HOST`` (+ port, password)."""
    if runtime.settings.runs.redis_url:
        return runtime.settings.runs.redis_url
    params = ((runtime.document.get("litellm_settings") or {}).get("cache_params") or {})
    resolved = {k: (env.get(v.removeprefix("os.environ/")) if isinstance(v, str) and v.startswith("os.environ/") else v)
                for k, v in params.items()}
    if resolved.get("url"):
        return str(resolved["url"])
    host = resolved.get("host") or env.get("REDIS_HOST")
    if env.get("REDIS_URL") and not resolved.get("host"):
        return str(env["REDIS_URL"])
    if not host:
        return None
    port = resolved.get("port") or env.get("REDIS_PORT") or 6379
    password = resolved.get("password") or env.get("REDIS_PASSWORD")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def open_store(runtime: Runtime) -> RunStore:
    """The store ``proxy_ext.runs`` names (raises :class:`RunsUnavailable`)."""
    settings = runtime.settings.runs
    try:
        if settings.store == "redis":
            from proxy_ext.runs.redis_store import RedisRunStore

            url = redis_url(runtime)
            if url is None:
                raise RunsUnavailable("proxy_ext.runs.store is redis but no Redis is configured "
                                      "(proxy_ext.runs.redis_url, litellm_settings.cache_params or REDIS_HOST)")
            return RedisRunStore(url, timeout_s=settings.redis_timeout_s)
        return SqliteRunStore(runtime.resolve_path(settings.path))
    except RunsUnavailable:
        raise
    except Exception as exc:
        raise RunsUnavailable(f"the durable run store ({settings.store}) cannot be opened: {type(exc).__name__}: {exc}") from None


def durable_runs(runtime: Runtime) -> DurableRuns:
    """This worker's durable runs (created on first use; raises :class:`RunsUnavailable`)."""
    global _instance
    with _lock:
        if _instance is None or _instance.runtime is not runtime:
            _instance = DurableRuns(runtime, open_store(runtime))
        return _instance
