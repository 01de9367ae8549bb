"""What counts as a credential, defined once: the request headers the proxy's auth reads a key
from, and secret-looking names (of environment variables, of JSON fields)."""

from __future__ import annotations

import re

__all__ = ["CREDENTIAL_HEADERS", "SECRET_ENV_NAME", "SECRET_FIELD_NAME"]

CREDENTIAL_HEADERS: tuple[str, ...] = ("authorization", "x-litellm-api-key", "api-key", "x-api-key", "x-goog-api-key", "anthropic-api-key")
"""Headers (lower case) the proxy's auth reads a key from."""

SECRET_ENV_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.I)
"""Environment variable names that hold secrets: never passed to tools, their values redacted."""

SECRET_FIELD_NAME = re.compile(r"(authorization|api[-_]?key|secret|password|token|cookie)", re.I)
"""JSON field names whose (string) values are secrets (redacted in traces)."""
