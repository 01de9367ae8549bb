"""Prometheus metrics of the extension, served at GET /metrics.

Collectors live in prometheus_client's default registry with a ``proxy_ext_`` prefix, so when
LiteLLM's own prometheus callback is on (it mounts ``/metrics`` too) one scrape shows both.
Define collectors with :func:`counter` / :func:`histogram` / :func:`gauge`: they are idempotent,
so a module loaded twice does not trip prometheus_client's duplicate-name check.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "counter", "gauge", "histogram", "render"]

_lock = threading.Lock()
_collectors: dict[str, Any] = {}


def _get(kind: type, name: str, doc: str, labels: tuple[str, ...], **kwargs: Any) -> Any:
    full = f"proxy_ext_{name}"
    with _lock:
        existing = _collectors.get(full)
        if existing is None:
            existing = kind(full, doc, labelnames=labels, **kwargs)
            _collectors[full] = existing
        return existing


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    """A counter named ``proxy_ext_<name>`` (``_total`` is appended by Prometheus)."""
    return _get(Counter, name, doc, labels)


def histogram(name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None) -> Histogram:
    """A histogram named ``proxy_ext_<name>``."""
    return _get(Histogram, name, doc, labels, **({"buckets": buckets} if buckets else {}))


def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    """A gauge named ``proxy_ext_<name>``."""
    return _get(Gauge, name, doc, labels)


def render() -> bytes:
    """The Prometheus text exposition of the default registry."""
    return generate_latest(REGISTRY)
