"""``proxy_ext.scale``: limits and metrics across workers and instances (part of :mod:`proxy_ext.config`)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from proxy_ext._config.base import _Section

__all__ = ["ScaleConfig"]


class ScaleConfig(_Section):
    """``proxy_ext.scale``: one proxy across workers and instances (see docs/operator-guide.md,
    "Running several workers and instances").

    Run slots are per instance: with ``--num_workers N`` the workers share them through a small
    locked state file (dead workers' slots come back). Redis adds a limit across instances."""

    max_concurrent_runs_per_key: int | None = Field(default=None, ge=1)
    """Runs one API key may have in progress at once (None: only ``agent.limits.max_concurrent_runs``
    applies). Per instance; across instances too when Redis is configured."""
    global_max_concurrent_runs: int | None = Field(default=None, ge=1)
    """Runs in progress across every instance sharing the Redis at ``redis_url`` (None: no global
    limit). Slots are leases that expire ``lease_ttl_s`` after their instance stops renewing them."""
    redis_url: str | None = None
    """Redis for the global limit, e.g. ``redis://host:6379/0`` or ``os.environ/REDIS_URL`` (None:
    LiteLLM's variables ``REDIS_URL``, else ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``)."""
    redis_key_prefix: str = Field(default="proxy_ext:runs", min_length=1)
    """Prefix of the Redis keys holding the leases (instances sharing it share the limit)."""
    lease_ttl_s: float = Field(default=30.0, ge=2, le=3600)
    """A lease not renewed for this long is free again (an instance renews its leases every third of it)."""
    redis_timeout_s: float = Field(default=0.5, gt=0, le=10)
    """Socket timeout of each Redis call (slots are taken on the event loop: keep it short)."""
    on_redis_error: Literal["reject", "allow"] = "reject"
    """When Redis cannot be reached: ``reject`` answers 503, ``allow`` starts the run (the global
    limit is then not enforced) and logs a warning."""
    state_dir: str | None = None
    """Directory of the per-instance state (run slots, Prometheus files) with ``--num_workers`` > 1
    (None: the system temp directory)."""
    gc_freeze_after_s: float | None = Field(default=0.0, ge=0, le=3600)
    """Seconds after the extension loads at which each worker runs one full garbage collection and
    then ``gc.freeze()``: the objects start-up left (~800,000: LiteLLM's modules, the cost map, the
    router) leave the collector's way, so its full collections, ~0.5 s of CPU and of stalled event
    loop each under load, walk only what was created since. 0: as soon as start-up next waits
    (before the proxy serves). None: never (CPython's default behaviour)."""
    multiprocess_metrics: bool = True
    """With ``--num_workers`` > 1, switch prometheus_client to multiprocess mode so one scrape of any
    worker shows the whole instance (unless ``PROMETHEUS_MULTIPROC_DIR`` is already set)."""

    @model_validator(mode="after")
    def _redis_for_global_limit(self) -> "ScaleConfig":
        if self.global_max_concurrent_runs is not None and not (self.redis_url or os.environ.get("REDIS_URL") or os.environ.get("REDIS_HOST")):
            raise ValueError("scale.global_max_concurrent_runs needs Redis: set scale.redis_url (or REDIS_URL / REDIS_HOST)")
        return self
