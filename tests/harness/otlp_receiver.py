"""A real OTLP/HTTP trace receiver for tests: an HTTP server on a free loopback port that decodes
each ``POST /v1/traces`` body (``ExportTraceServiceRequest`` protobuf, plain or gzip) with
``opentelemetry-proto`` and keeps the spans, flattened, for assertions.

    with OtlpReceiver() as receiver:
        ...  # point an exporter at receiver.endpoint (base URL) or receiver.traces_url
        spans = receiver.wait_for(lambda spans: any(s.name == "invoke_agent agent" for s in spans))

``status`` makes it answer every export with that HTTP status (e.g. 503: a collector that is down).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from tests.harness.fake_upstream import free_port

__all__ = ["OtlpReceiver", "ReceivedSpan"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass
class ReceivedSpan:
    """One exported span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a root span."""
    kind: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    scope: str
    resource: dict[str, Any]
    start_ns: int
    end_ns: int
    events: list[dict[str, Any]] = field(default_factory=list)


class OtlpReceiver:
    """The receiver; use as a context manager."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ReceivedSpan] = []
        self.requests: list[dict[str, Any]] = []
        """Every export request: ``headers`` (lower-case names) and the raw ``body``."""
        self.status = 200
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """Base URL (``OTEL_EXPORTER_OTLP_ENDPOINT`` style)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.endpoint}/v1/traces"

    def _receive(self, headers: dict[str, str], body: bytes) -> int:
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            self.requests.append({"headers": headers, "body": body})
            if self.status != 200:
                return self.status
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(ReceivedSpan(
                            span.name, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(), _KINDS[span.kind],
                            _attributes(span.attributes), _STATUS[span.status.code], span.status.message, scope_spans.scope.name,
                            resource, span.start_time_unix_nano, span.end_time_unix_nano,
                            [{"name": e.name, "attributes": _attributes(e.attributes)} for e in span.events]))
        return 200

    def start(self) -> "OtlpReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                status = receiver._receive({k.lower(): v for k, v in self.headers.items()}, body)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "OtlpReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.requests.clear()

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 20.0) -> list[ReceivedSpan]:
        """The spans received so far once ``done(spans)`` holds; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.snapshot()
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise AssertionError(f"OTLP receiver: condition not met after {timeout_s}s; received {len(spans)} spans: {names}")
            time.sleep(0.05)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace."""
        return [s for s in self.snapshot() if s.trace_id == trace_id]
