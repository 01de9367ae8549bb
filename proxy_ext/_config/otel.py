"""``proxy_ext.traces.otel``: the OpenTelemetry export section (part of :mod:`proxy_ext.config`)."""

from __future__ import annotations


from pydantic import Field, field_validator, model_validator

from proxy_ext._config.base import _Section, http_url

__all__ = ["OtelConfig"]


class OtelConfig(_Section):
    """``proxy_ext.traces.otel``: OpenTelemetry spans of agent runs, exported over OTLP/HTTP
    (docs/observability.md). Unset keys fall back to the standard ``OTEL_*`` variables."""

    enabled: bool | None = None
    """Export spans. None: on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
    is set (and ``OTEL_SDK_DISABLED`` is not true); false keeps it off even then."""
    endpoint: str | None = None
    """OTLP/HTTP collector URL. A base URL (``http://collector:4318``) gets ``/v1/traces`` appended; a URL
    with a path is used as it is. None: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else ``http://localhost:4318/v1/traces``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers of every export request (values may be ``os.environ/NAME``), over those of
    ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``."""
    service_name: str | None = None
    """``service.name`` of the spans. None: ``OTEL_SERVICE_NAME``, else ``litellm-proxy``
    (``OTEL_RESOURCE_ATTRIBUTES`` adds further resource attributes)."""
    capture_content: bool = False
    """Record prompts, answers, tool arguments and tool results on the spans (redacted of
    secret-looking values). Off: spans carry names, models, tokens, cost and outcomes only."""
    max_content_chars: int = Field(default=8192, ge=64)
    """Longest content attribute (with ``capture_content``); longer text is cut."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one export request."""
    max_queue_size: int = Field(default=2048, ge=1)
    """Spans buffered for export; when the collector cannot keep up, further spans are dropped."""
    max_export_batch_size: int = Field(default=512, ge=1)
    """Spans per export request."""
    schedule_delay_s: float = Field(default=5.0, gt=0)
    """Longest wait before buffered spans are exported."""
    shutdown_timeout_s: float = Field(default=5.0, ge=0)
    """At proxy shutdown, buffered spans are flushed for at most this long."""

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @model_validator(mode="after")
    def _batch_within_queue(self) -> "OtelConfig":
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError(f"traces.otel.max_export_batch_size ({self.max_export_batch_size}) exceeds "
                             f"traces.otel.max_queue_size ({self.max_queue_size})")
        return self
