"""Prometheus metrics of the extension, served at GET /metrics.

Collectors live in prometheus_client's default registry with a ``proxy_ext_`` prefix, so when
LiteLLM's own prometheus callback is on (it mounts ``/metrics`` too) one scrape shows both.
Define collectors with :func:`counter` / :func:`histogram` / :func:`gauge_function`: they are idempotent,
so a module loaded twice does not trip prometheus_client's duplicate-name check.

With several workers prometheus_client runs in multiprocess mode (:mod:`proxy_ext.metrics_multiproc`):
gauges add up the live workers (``livesum``) and a scrape reads every worker's samples. Gauges read
at scrape time (:func:`gauge_function`) are then set by :func:`refresh` instead.
"""

from __future__ import annotations

import threading
from typing import Any

from proxy_ext import metrics_multiproc

metrics_multiproc.setup_early()  # several workers: multiprocess mode before the first collector exists

try:
    from prometheus_client import REGISTRY, CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

    AVAILABLE = True
except ImportError:  # optional: without it metrics are off and every collector is a no-op
    AVAILABLE = False
    CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
    Counter = Gauge = Histogram = None  # type: ignore[assignment,misc]

__all__ = ["AVAILABLE", "CONTENT_TYPE_LATEST", "before_render", "counter", "gauge", "gauge_function", "histogram", "refresh", "refreshing", "render"]


class _NoOp:
    """Stands in for a collector when prometheus_client is not installed."""

    def labels(self, *args: Any, **kwargs: Any) -> "_NoOp":
        return self

    def inc(self, *args: Any, **kwargs: Any) -> None:
        pass

    dec = set = observe = inc

    def time(self) -> Any:
        import contextlib

        return contextlib.nullcontext()

_lock = threading.Lock()
_collectors: dict[str, Any] = {}


def _get(kind: Any, name: str, doc: str, labels: tuple[str, ...], **kwargs: Any) -> Any:
    if not AVAILABLE:
        return _NoOp()
    full = f"proxy_ext_{name}"
    with _lock:
        existing = _collectors.get(full)
        if existing is None:
            existing = kind(full, doc, labelnames=labels, **kwargs)
            _collectors[full] = existing
        return existing


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
    """A counter named ``proxy_ext_<name>`` (``_total`` is appended by Prometheus)."""
    return _get(Counter, name, doc, labels)


def histogram(name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None) -> Any:
    """A histogram named ``proxy_ext_<name>``."""
    return _get(Histogram, name, doc, labels, **({"buckets": buckets} if buckets else {}))


def gauge(name: str, doc: str, labels: tuple[str, ...] = (), multiprocess_mode: str = "livesum") -> Any:
    """A gauge named ``proxy_ext_<name>`` (with several workers: ``multiprocess_mode`` over them)."""
    return _get(Gauge, name, doc, labels, multiprocess_mode=multiprocess_mode)


_refreshers: dict[str, tuple[Any, Any]] = {}


def gauge_function(name: str, doc: str, read: Any) -> None:
    """A gauge ``proxy_ext_<name>`` whose value is ``read()`` at scrape time (registered once).

    In multiprocess mode a scrape cannot call into other workers: each worker sets the gauge with
    :func:`refresh` (at its scrapes and when the value changes) and the scrape adds up the live ones."""
    if not AVAILABLE:
        return
    full = f"proxy_ext_{name}"
    with _lock:
        if full in _collectors:
            return
        collector = Gauge(full, doc, multiprocess_mode="livesum")
        if metrics_multiproc.active():
            _refreshers[name] = (collector, read)
            collector.set(0)
        else:
            collector.set_function(read)
        _collectors[full] = collector


def refreshing() -> bool:
    """True when gauges read at scrape time are set by :func:`refresh` (multiprocess mode)."""
    return bool(_refreshers)


def refresh(*names: str) -> None:
    """Set the :func:`gauge_function` gauges ``names`` (all: none named) from their read functions."""
    for name, (collector, read) in list(_refreshers.items()):
        if not names or name in names:
            collector.set(read())


_before_render: list[Any] = []


def before_render(fn: Any) -> None:
    """Call ``fn()`` at every scrape of this worker, before the samples are read (e.g. to record
    what was collected outside ordinary code)."""
    if fn not in _before_render:
        _before_render.append(fn)


def render() -> bytes:
    """The Prometheus text exposition (empty when metrics are off): with several workers, the sum
    of every worker's samples; else the default registry."""
    if not AVAILABLE:
        return b""
    for fn in list(_before_render):
        fn()
    refresh()
    return metrics_multiproc.render() if metrics_multiproc.active() else generate_latest(REGISTRY)
