"""What to suggest for a bad ``proxy_ext:`` key or value: the key meant by a typo (``defualt_model``
→ ``default_model``, ``trace`` → ``traces``) and, per kind of wrong type, what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel

__all__ = ["allowed_for_type", "did_you_mean"]

_TYPES = {
    "int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "dict_type": "a mapping of keys", "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys", "list_type": "a list", "url_parsing": "a URL",
}


def allowed_for_type(error: Mapping[str, Any]) -> str | None:
    """``allowed: …`` for a value of the wrong type (None: no better words than pydantic's)."""
    words = _TYPES.get(str(error.get("type", "")))
    return f"allowed: {words}" if words else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _keys_at(root: type[BaseModel], loc: Sequence[Any]) -> set[str]:
    """The keys the schema allows where ``loc`` points (a dict key or list index keeps the models
    of its values: ``agent.profiles.demo`` is an AgentProfile)."""
    current = [root]
    for part in loc:
        found = [m for model in current if (f := model.model_fields.get(str(part))) is not None for m in _models_in(f.annotation)]
        if found:
            current = found
        elif not any(str(part) in model.model_fields for model in current):
            continue
        else:
            return set()  # a field that holds no section (e.g. a string): nothing to suggest
    return {name for model in current for name in model.model_fields}


def did_you_mean(root: type[BaseModel], loc: Sequence[Any]) -> str:
    """`` (did you mean 'default_model'?)`` for an unknown key at ``loc``; empty when none is close."""
    if not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), sorted(_keys_at(root, loc[:-1])), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
