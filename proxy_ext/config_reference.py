"""Render docs/config.md — the reference of every ``proxy_ext:`` key — from the schema itself.

``python -m proxy_ext.config_reference > docs/config.md``; a test fails when the file is stale,
so the reference can never drift from the code.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from proxy_ext.config import ProxyExtConfig

__all__ = ["render"]

HEADER = """# `proxy_ext:` configuration reference

Generated from `proxy_ext/config.py` by `.venv/bin/python -m proxy_ext.config_reference > docs/config.md` — do not edit by hand.

The section lives in the same `proxy_config.yaml` as LiteLLM's own sections (LiteLLM ignores it).
Every key is optional. Unknown keys, wrong types and out-of-range values stop the proxy at start-up
with a message naming the key, the value and what is allowed; `.venv/bin/proxy-ext doctor --config FILE`
(or `make doctor`) reports the same without starting anything. String values may be `os.environ/NAME` to read an
environment variable (as in LiteLLM's sections).

Environment variables read through the same layer:

| variable | effect |
| --- | --- |
| `MINI_AGENT_STORE_TRACES=1` | turns `traces.enabled` on (either is enough) |
| `MINI_AGENT_STORE_PATH` | sets `traces.path` (wins over the config) |
| `CODEX_AGENT_API_BASE` | `providers.codex_agent.api_base` when the config leaves it unset |
| `CODEX_AGENT_API_KEY` | `providers.codex_agent.api_key` when the config leaves it unset |
| `LITELLM_ENABLE_CODEX_AGENT=1` | turns `providers.codex_agent.enabled` on |

The two switches take `1`, `true`, `yes`, `on` (on) or `0`, `false`, `no`, `off`; they only turn
things on (`MINI_AGENT_STORE_TRACES=1` next to `traces.enabled: false` means on). A variable and its
key set to different values, a switch against an explicit `false`/`true`, or a switch value that is
none of those is a warning at start-up (stderr and the log) and in the doctor, naming what is used.

The OpenTelemetry export (`traces.otel`) reads the standard variables for every key the config
leaves unset: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (either one turns
it on when `traces.otel.enabled` is unset), `OTEL_EXPORTER_OTLP_TRACES_HEADERS` /
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
and `OTEL_SDK_DISABLED` (see docs/observability.md).
"""


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation).replace("typing.", "")
    text = re.sub(r"proxy_ext\.(?:_config\.\w+|config)\.", "", text.replace("NoneType", "None"))
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "(required)"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value)}`"


def _constraints(field: Any) -> str:
    parts = []
    for meta in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return ", ".join(parts)


@cache
def _field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Attribute docstrings (a string literal right after a field) of ``model``'s class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str):
                docs[node.target.id] = following.value.value
    return docs


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    rows: list[str] = []
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        key = f"{prefix}.{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((annotation, key))
            continue
        args = getattr(annotation, "__args__", ())
        inner = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner:  # dict[str, Model] / Model | None
            nested.append((inner[0], f"{key}.<name>" if "dict" in str(annotation) else key))
        description = " ".join(_field_docs(model).get(name, "").split()).replace("``", "`").replace("|", "\\|")
        bounds = _constraints(field)
        rows.append(f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {description}{' (' + bounds + ')' if bounds else ''} |")
    if rows:
        out.append(f"\n## `{prefix}`\n")
        doc = " ".join((model.__doc__ or "").split()).replace("``", "`")
        if doc:
            out.append(doc + "\n")
        out.append("| key | type | default | meaning |\n| --- | --- | --- | --- |")
        out.extend(rows)
    for child, key in nested:
        _section(child, key, out)


def render() -> str:
    """The Markdown reference."""
    out = [HEADER]
    _section(ProxyExtConfig, "proxy_ext", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
