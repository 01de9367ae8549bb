"""The base of every ``proxy_ext:`` section and the error a bad section raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """The ``proxy_ext:`` section (or the file holding it) is invalid; the message says what to fix."""


class _Section(BaseModel):
    # Field docstrings are read by proxy_ext.config_reference (not use_attribute_docstrings: that
    # parses source at import and would add ~100 ms to proxy start-up).
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

