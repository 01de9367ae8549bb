"""The OpenTelemetry export of agent-run spans: proxy_ext's own TracerProvider, batched, over OTLP/HTTP.

Our own provider, never the global one: LiteLLM's ``otel`` callback installs (and configures)
the global provider for its spans; ours is separate, so neither side changes the other's
exporter, sampler or resource. Spans of both can still nest (W3C ``traceparent``, see
:mod:`proxy_ext.agent.otel`).

Settings come from ``proxy_ext.traces.otel`` and, for every key left unset, the standard
variables: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_TRACES_SAMPLER``.

The provider is built lazily, once per worker process, on the first run that needs it (so
importing proxy_ext stays free of network and threads). The exporter runs on the batch
processor's thread: a collector that is down or slow never blocks or fails a run; its spans are
dropped once the queue is full. ``/ready`` reports the last export's outcome (``otel``), and
buffered spans are flushed, within ``shutdown_timeout_s``, when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from proxy_ext.config import OtelConfig

__all__ = ["ExportState", "OtelSettings", "export_state", "health_problem", "import_problem", "is_enabled", "resolve", "shutdown",
           "tracer", "use_provider"]

logger = logging.getLogger("proxy_ext.otel")

DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_SERVICE_NAME = "litellm-proxy"
TRACES_PATH = "/v1/traces"
SCOPE = "proxy_ext"


@dataclass(frozen=True)
class OtelSettings:
    """``traces.otel`` with the environment applied: what the exporter is built from."""

    endpoint: str
    headers: dict[str, str]
    service_name: str | None
    """None: ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` decide, else the default."""
    config: OtelConfig


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def is_enabled(config: OtelConfig, env: Mapping[str, str] | None = None) -> bool:
    """Whether runs export spans: ``enabled`` when set, else whether a standard OTLP endpoint
    variable is set (and the SDK is not switched off with ``OTEL_SDK_DISABLED``)."""
    env = os.environ if env is None else env
    if config.enabled is not None:
        return config.enabled
    if _flag(env, "OTEL_SDK_DISABLED") or env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _signal_url(base: str) -> str:
    return base if urlsplit(base).path not in ("", "/") else base.rstrip("/") + TRACES_PATH


def _parse_headers(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` (values URL-encoded) as the OTLP exporter variables spell headers."""
    headers = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            headers[unquote(name.strip()).lower()] = unquote(value.strip())
    return headers


def resolve(config: OtelConfig, env: Mapping[str, str] | None = None) -> OtelSettings:
    """The endpoint, headers and service name the exporter uses."""
    env = os.environ if env is None else env
    if config.endpoint:
        endpoint = _signal_url(config.endpoint)
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    else:
        endpoint = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/") + TRACES_PATH
    headers = _parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
    headers.update(_parse_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")))
    headers.update({k.lower(): v for k, v in config.headers.items()})
    return OtelSettings(endpoint, headers, config.service_name, config)


def import_problem() -> str | None:
    """Why spans cannot be exported from this environment (None: the packages are there)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        return f"OpenTelemetry exporter not installed ({exc.name}): pip install opentelemetry-exporter-otlp-proto-http"
    return None


class ExportState:
    """Outcome of the exports so far (read by ``/ready``); updated on the exporter's thread."""

    def __init__(self) -> None:
        self.exported = 0
        self.failed = 0
        self.last_ok: bool | None = None
        self.last_at = 0.0
        self.problem: str | None = None
        """Why no provider could be built (None: built, or not tried yet)."""

    def record(self, ok: bool, spans: int) -> None:
        if ok:
            self.exported += spans
        else:
            self.failed += spans
        self.last_ok, self.last_at = ok, time.time()


_state = ExportState()
_lock = threading.Lock()
_provider: Any = None
_tracer: Any = None


def export_state() -> ExportState:
    """This process's export outcomes."""
    return _state


def health_problem() -> str | None:
    """Why spans are not reaching the collector (None: no export failed last), in a fixed short
    phrase without addresses (for ``/ready``)."""
    if import_problem() is not None:
        return "OpenTelemetry exporter not installed"
    if _state.problem is not None:
        return "OpenTelemetry exporter could not be set up"
    if _state.last_ok is False:
        return "last span export failed (collector unreachable or refusing)"
    return None


def _tracking_exporter(inner: Any) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class TrackingExporter(SpanExporter):
        """The OTLP exporter, recording each batch's outcome; an exception is a failed batch."""

        def export(self, spans: Sequence[Any]) -> Any:
            try:
                result = inner.export(spans)
            except Exception as exc:  # noqa: BLE001 - never propagate into the SDK's worker
                logger.warning("OpenTelemetry export failed: %s", type(exc).__name__)
                result = SpanExportResult.FAILURE
            _state.record(result == SpanExportResult.SUCCESS, len(spans))
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return TrackingExporter()


def _resource(settings: OtelSettings) -> Any:
    from opentelemetry.sdk.resources import Resource

    detected = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    name = settings.service_name
    if name is None and str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
        name = DEFAULT_SERVICE_NAME
    return detected.merge(Resource({"service.name": name})) if name else detected


def _build(settings: OtelSettings) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    config = settings.config
    exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=settings.headers, timeout=config.timeout_s)
    provider = TracerProvider(resource=_resource(settings), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(
        _tracking_exporter(exporter), max_queue_size=config.max_queue_size, max_export_batch_size=config.max_export_batch_size,
        schedule_delay_millis=config.schedule_delay_s * 1000, export_timeout_millis=config.timeout_s * 1000))
    return provider


def _on_exit(timeout_s: float) -> None:
    # In the proxy: at its shutdown (uvicorn re-raises SIGTERM afterwards: atexit never runs there).
    from proxy_ext import litellm_adapter as adapter

    adapter.on_proxy_shutdown(lambda: shutdown(timeout_s))
    atexit.register(shutdown, timeout_s)


def tracer(config: OtelConfig) -> Any:
    """This process's tracer for agent-run spans (built on first use); None when it cannot be built
    (the reason is in :func:`export_state`, logged once)."""
    global _provider, _tracer
    if _tracer is not None or _state.problem is not None:
        return _tracer
    with _lock:
        if _tracer is None and _state.problem is None:
            problem = import_problem()
            if problem is None:
                try:
                    _provider = _build(resolve(config))
                    _tracer = _provider.get_tracer(SCOPE)
                    _on_exit(config.shutdown_timeout_s)
                except Exception as exc:  # noqa: BLE001 - a broken exporter setup must not break runs
                    problem = f"OpenTelemetry exporter could not be set up: {type(exc).__name__}: {exc}"
            if problem is not None:
                _state.problem = problem
                logger.warning("proxy_ext: %s; agent runs are not traced with OpenTelemetry", problem)
    return _tracer


def use_provider(provider: Any) -> None:
    """Use ``provider`` (e.g. with an in-memory exporter, in tests) instead of building one."""
    global _provider, _tracer
    with _lock:
        _provider, _tracer = provider, (provider.get_tracer(SCOPE) if provider is not None else None)
        _state.problem = None


def shutdown(timeout_s: float = 5.0) -> None:
    """Flush buffered spans (for at most ``timeout_s``) and stop the exporter; idempotent."""
    global _provider, _tracer
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is None:
        return

    def stop() -> None:
        try:
            provider.force_flush(int(timeout_s * 1000))
            provider.shutdown()
        except Exception as exc:  # noqa: BLE001 - shutting down: report, never raise
            logger.warning("OpenTelemetry shutdown failed: %s", type(exc).__name__)

    # Bounded even when the collector hangs (an export in flight waits for its own timeout).
    worker = threading.Thread(target=stop, name="proxy_ext.otel_shutdown", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
