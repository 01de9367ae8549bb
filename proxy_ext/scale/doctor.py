"""What ``proxy-ext doctor`` says about ``proxy_ext.scale``: the limits in force, and whether the
Redis of the global limit answers (the doctor does not start the proxy)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["scale_report"]


def scale_report(settings: Any) -> tuple[str, list[str], list[str]]:
    """(capability detail, warnings, problems) for ``settings.scale``."""
    scale, limit = settings.scale, settings.agent.limits.max_concurrent_runs
    parts, warnings, problems = [f"{limit} runs at once per instance"], [], []
    per_key = scale.max_concurrent_runs_per_key
    if per_key is not None:
        parts.append(f"{per_key} per key")
        if per_key >= limit:
            warnings.append(f"scale.max_concurrent_runs_per_key ({per_key}) is not below agent.limits.max_concurrent_runs "
                            f"({limit}): it never limits anything")
    if scale.global_max_concurrent_runs is not None:
        from proxy_ext.scale.leases import redis_problem, redis_url

        where = (redis_url(scale.redis_url) or "").split("@")[-1]  # never the password
        parts.append(f"{scale.global_max_concurrent_runs} across instances (Redis {where})")
        problem = redis_problem(scale, max(scale.redis_timeout_s, 1.0))
        if problem is not None and scale.on_redis_error == "allow":
            warnings.append(f"scale.global_max_concurrent_runs: {problem}; runs start without the global limit (on_redis_error: allow)")
        elif problem is not None:
            problems.append(f"scale.global_max_concurrent_runs: {problem}; every run gets a 503 until it answers")
    if scale.state_dir is not None and not (os.path.isdir(scale.state_dir) and os.access(scale.state_dir, os.W_OK | os.X_OK)):
        problems.append(f"scale.state_dir {scale.state_dir!r} is not a writable directory (workers could not share run slots)")
    return ", ".join(parts), warnings, problems
