"""Validate tool-call arguments against a tool's JSON schema before invoking it."""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["validate_arguments"]

_lock = threading.Lock()
_validators: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=str)
    with _lock:
        found = _validators.get(key)
    if found is None:
        from jsonschema import validators  # imported on first use: keeps proxy start-up fast

        cls = validators.validator_for(schema)
        cls.check_schema(schema)
        found = cls(schema)
        with _lock:
            if len(_validators) > 1024:  # tool hosts may change schemas; keep the cache bounded
                _validators.clear()
            _validators[key] = found
    return found


def validate_arguments(schema: dict[str, Any], arguments: Any) -> str | None:
    """None when ``arguments`` match ``schema``; else one line the model can act on."""
    try:
        validator = _validator(schema)
    except Exception as exc:  # jsonschema.SchemaError and friends
        return f"the tool's published JSON schema is invalid ({type(exc).__name__}); arguments cannot be checked"
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    parts = []
    for error in errors[:3]:
        where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
        parts.append(f"{where}: {error.message}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "arguments do not match the tool's schema: " + "; ".join(parts) + more
