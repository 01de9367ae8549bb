"""The ``http`` tool backend: tools served by an HTTP tool host (``GET /tools``, ``POST /invoke``)."""

from proxy_ext.tools.http.backend import HttpToolBackend, ToolHostError

__all__ = ["HttpToolBackend", "ToolHostError"]
