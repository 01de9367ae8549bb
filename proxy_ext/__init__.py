"""proxy_ext: an extension for the stock LiteLLM proxy.

Enable it with one line in ``proxy_config.yaml``::

    litellm_settings:
      callbacks: ["proxy_ext.extension"]

Importing this package is cheap and does no I/O; LiteLLM itself is imported only when the
``extension`` object (the proxy's callback) is first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "assemble_stream_text", "augment_json_with_cost", "extension", "extract_content"]

# Public response helpers (proxy_ext.response_utils), loaded on first use: they import no LiteLLM.
_HELPERS = frozenset({"assemble_stream_text", "augment_json_with_cost", "extract_content"})

if TYPE_CHECKING:  # pragma: no cover
    from proxy_ext.glue import ProxyExtension
    from proxy_ext.response_utils import assemble_stream_text, augment_json_with_cost, extract_content

    extension: ProxyExtension


def __getattr__(name: str) -> Any:
    # Lazy so that client code importing helpers from proxy_ext does not pay for LiteLLM.
    if name == "extension":
        from proxy_ext.glue import get_extension

        return get_extension()
    if name in _HELPERS:
        from proxy_ext import response_utils

        return getattr(response_utils, name)
    raise AttributeError(f"module 'proxy_ext' has no attribute {name!r}")
