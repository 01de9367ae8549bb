"""prometheus_client's multiprocess mode, so one scrape of any worker shows the whole instance.

With ``--num_workers N`` every worker is a process of its own with its own counters. prometheus_client
solves this itself: with ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its samples to
memory-mapped files in that directory and a ``MultiProcessCollector`` adds them up at scrape time.

- ``PROMETHEUS_MULTIPROC_DIR`` already set (by the operator, or by LiteLLM itself when its own
  ``prometheus`` callback runs with several workers): used as it is, so both share one directory.
- Else, with ``--num_workers`` > 1 (and ``scale.multiprocess_metrics``): a directory of this instance
  (:func:`proxy_ext.scale.instance_dir`), set in the worker before the collectors exist.

Dead workers: counters and histograms stay (they are totals); live gauges of workers that are gone
are dropped with ``multiprocess.mark_process_dead`` at each scrape.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys

from proxy_ext.scale import instance_dir, is_alive, multi_worker

__all__ = ["active", "collect_dead_workers", "directory", "render", "setup", "setup_early"]

logger = logging.getLogger("proxy_ext.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db$")


def directory() -> str | None:
    """The multiprocess directory in use (None: single-process metrics)."""
    return os.environ.get(ENV) or os.environ.get(ENV.lower()) or None


def setup(enabled: bool = True, state_dir: str | None = None) -> str | None:
    """Switch this worker to multiprocess metrics when the instance has several workers; returns
    the directory (None: single-process). Call before the extension's collectors are created."""
    configured = directory()
    if configured is None and enabled and multi_worker():
        path = instance_dir(state_dir) / "prometheus"
        path.mkdir(exist_ok=True, mode=0o700)
        os.environ[ENV] = configured = str(path)
    if configured is None:
        return None
    values = sys.modules.get("prometheus_client.values")
    if values is not None and getattr(values, "ValueClass", None) is getattr(values, "MutexValue", None):
        # prometheus_client was imported before the variable was set: pick its value class again,
        # exactly as its own import would have with the variable set.
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    collect_dead_workers(configured)
    logger.info("proxy_ext: Prometheus multiprocess mode, %s", configured)
    return configured


def setup_early() -> None:
    """:func:`setup` with the installed settings (defaults before the extension loaded them), for
    the first import of :mod:`proxy_ext.metrics`: whatever imports it first, e.g. a provider
    LiteLLM loads before the callbacks, the collectors are created in the right mode."""
    if not multi_worker() or directory() is not None:
        return
    from proxy_ext.state import installed_runtime

    runtime = installed_runtime()
    if runtime is None:
        setup()
    elif runtime.settings.metrics.enabled:
        setup(runtime.settings.scale.multiprocess_metrics, runtime.settings.scale.state_dir)


def active() -> bool:
    """True when samples go to the multiprocess directory."""
    if directory() is None:
        return False
    try:
        from prometheus_client import values
    except ImportError:
        return False
    return values.ValueClass is not values.MutexValue


def collect_dead_workers(path: str) -> list[int]:
    """``mark_process_dead`` for every pid with live-gauge files that no longer runs."""
    from prometheus_client import multiprocess

    owners = {int(m.group(1)) for m in map(_LIVE_FILE.search, glob.glob(os.path.join(path, "gauge_live*_*.db"))) if m}
    dead = sorted(pid for pid in owners if pid != os.getpid() and not is_alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return dead


def render() -> bytes:
    """The whole instance's samples (every worker's files in the directory)."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    path = directory()
    assert path is not None
    collect_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry)
