"""The base of every ``proxy_ext:`` section and the error a bad section raises."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigError", "http_url"]


class ConfigError(ValueError):
    """The ``proxy_ext:`` section (or the file holding it) is invalid; the message says what to fix."""


class _Section(BaseModel):
    # Field docstrings are read by proxy_ext.config_reference (not use_attribute_docstrings: that
    # parses source at import and would add ~100 ms to proxy start-up).
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)



def http_url(value: str | None) -> str | None:
    """A field validator body: None, or an ``http(s)://host...`` URL."""
    if value is not None and not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value
