"""The ``local`` backend: tools that are plain Python callables in the proxy process.

A tool's JSON schema is derived from its signature (type hints) and docstring (first paragraph is
the description; ``name: text`` lines under ``Args:`` describe parameters). Operators add their own
with ``proxy_ext.agent.local_tools: ["package.module.function"]``. When ``tools.exec.enabled`` is
on, ``exec_python`` / ``exec_shell`` join this backend.
"""

from __future__ import annotations

import ast
import asyncio
import datetime
import importlib
import inspect
import math
import operator
import re
import time
import typing
from collections.abc import Callable
from typing import Any

from proxy_ext.tools.base import ToolContext, ToolResult, ToolSpec

__all__ = ["LocalToolRegistry", "spec_from_callable", "BUILTIN_TOOLS"]

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _schema_for(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}
    if origin in (list, tuple, set):
        return {"type": "array", **({"items": _schema_for(args[0])} if args else {})}
    if origin is dict:
        return {"type": "object"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in args if a is not type(None)]
        return _schema_for(options[0]) if len(options) == 1 else {"anyOf": [_schema_for(a) for a in options]}
    return {}


def _param_docs(doc: str) -> dict[str, str]:
    docs: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args:
            match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", stripped)
            if match:
                docs[match.group(1)] = match.group(2)
            elif not stripped:
                in_args = False
    return docs


def spec_from_callable(fn: Callable[..., Any], name: str | None = None) -> ToolSpec:
    """A ToolSpec from a function's type hints and docstring."""
    doc = inspect.getdoc(fn) or ""
    description = doc.split("\n\n")[0].strip()
    hints = typing.get_type_hints(fn)
    param_docs = _param_docs(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name == "ctx":
            continue
        schema = _schema_for(hints.get(param.name, str))
        if param.name in param_docs:
            schema["description"] = param_docs[param.name]
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        parameters["required"] = required
    return ToolSpec(name=name or fn.__name__, description=description, parameters=parameters)


# ----------------------------------------------------------------------------------- built-ins

_OPERATORS: dict[type, Callable[..., Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 1000 or (abs(left) > 1 and right * math.log10(abs(left)) > 1000)):
            raise ValueError("exponent too large")  # keeps every result under ~1000 digits: no CPU burn
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError("only numbers and + - * / // % ** and parentheses are allowed")


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression exactly as written.

    Args:
        expression: Numbers with + - * / // % ** and parentheses, e.g. "(2 + 3) * 4".
    """
    if len(expression) > 500:
        raise ValueError("expression longer than 500 characters")
    return _evaluate(ast.parse(expression, mode="eval"))


def current_time() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


BUILTIN_TOOLS: dict[str, Callable[..., Any]] = {"calculator": calculator, "current_time": current_time}


class LocalToolRegistry:
    """Python callables as tools (sync ones run in a worker thread)."""

    def __init__(self, functions: dict[str, Callable[..., Any]]) -> None:
        self.functions = dict(functions)
        self.specs = {name: spec_from_callable(fn, name) for name, fn in self.functions.items()}

    @classmethod
    def from_dotted_paths(cls, paths: list[str]) -> "LocalToolRegistry":
        functions = dict(BUILTIN_TOOLS)
        for path in paths:
            module_name, _, attribute = path.rpartition(".")
            fn = getattr(importlib.import_module(module_name), attribute)
            if not callable(fn):
                raise TypeError(f"{path} is not callable")
            functions[attribute] = fn
        return cls(functions)

    async def list_tools(self, ctx: ToolContext) -> list[ToolSpec]:
        return list(self.specs.values())

    async def invoke(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        started = time.perf_counter()
        fn = self.functions.get(name)
        if fn is None:
            return ToolResult(ok=False, error=f"unknown tool {name!r}")
        spec = self.specs[name]
        allowed = set(spec.parameters.get("properties", {}))
        unknown = set(arguments) - allowed
        missing = set(spec.parameters.get("required", [])) - set(arguments)
        if unknown or missing:
            problems = [f"unknown argument(s) {sorted(unknown)}" if unknown else "", f"missing argument(s) {sorted(missing)}" if missing else ""]
            return ToolResult(ok=False, error="; ".join(p for p in problems if p), duration_ms=0.0)
        try:
            if inspect.iscoroutinefunction(fn):
                value = await fn(**arguments)
            else:
                # Operator tools may block: a worker thread. The built-ins are microseconds of pure
                # computation (the calculator caps its input): inline, no thread hop.
                value = fn(**arguments) if BUILTIN_TOOLS.get(name) is fn else await asyncio.to_thread(fn, **arguments)
            return ToolResult(ok=True, content=value, duration_ms=(time.perf_counter() - started) * 1000)
        except Exception as exc:  # the model sees the failure and may try again
            return ToolResult(ok=False, error=f"{type(exc).__name__}: {exc}", duration_ms=(time.perf_counter() - started) * 1000)
