"""What a client may ask LiteLLM to do per request, checked by the guard before LiteLLM sees it:
its control headers (``x-litellm-timeout``, ``x-litellm-num-retries`` ...) and the retry and
timeout fields of a body (``num_retries``, ``max_retries``, ``timeout``, ``stream_timeout``).

Why retries are capped: LiteLLM retries a failing call with exponential backoff (up to 8 s apart)
as often as the client asks, and goes on after the client has hung up. Twenty abandoned requests
asking for 100 000 retries each went on calling the upstream 3 times a second, for days. The
operator's own retry settings (``router_settings.num_retries``, a model's ``num_retries``) are not
touched: only what a request asks for.

Why timeouts are checked: LiteLLM converts a body's ``timeout`` with ``float()`` deep inside the
call, retried: ``"x"``, ``"nan"`` or ``[1]`` were 500s after 4 s of retries, and a negative one a
408 after three upstream calls. What LiteLLM ignores (``0``, ``null``, ``{}``) still passes.

Why guardrail names are checked: LiteLLM sends the names a request lists in ``guardrails`` (top
level, ``metadata`` or ``litellm_metadata``) back in its ``x-litellm-applied-guardrails`` response
header. A name outside Latin-1 (``"€"``) was a plain-text 500 on every model, and one with a line
break a connection closed without any answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

__all__ = ["RETRY_FIELDS", "TIMEOUT_FIELDS", "ControlFieldScan", "body_problem", "header_problem"]

_NUMBER_HEADERS = {b"x-litellm-timeout": "a number of seconds", b"x-litellm-stream-timeout": "a number of seconds",
                   b"x-litellm-keepalive-seconds": "a number of seconds", b"x-litellm-num-retries": "a whole number"}
"""LiteLLM's per-request control headers and what each must be: it converts them with a bare
``float()`` / ``int()`` (``abc``, ``nan``, ``1e9`` were 500s)."""
_RETRIES_HEADER = b"x-litellm-num-retries"

RETRY_FIELDS = ("num_retries", "max_retries")
"""Body fields that set how often LiteLLM (``num_retries``) or the provider SDK (``max_retries``)
retries a failing call."""
TIMEOUT_FIELDS = ("timeout", "stream_timeout")
"""Body fields with the seconds LiteLLM waits for the upstream."""
_MARKS = (b"retries", b"timeout", b"guardrails")
"""In every checked field's name: a body without them needs no parsing."""
_TAIL = max(len(mark) for mark in _MARKS) - 1
_SETTING = "proxy_ext.guard.max_client_retries"


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def header_problem(headers: Iterable[tuple[bytes, bytes]], max_retries: int) -> str | None:
    """Why a request's control headers are refused (None: they are fine)."""
    for key, value in headers:
        what = _NUMBER_HEADERS.get(key)
        if what is None:
            continue
        text = value.decode("latin-1").strip()
        whole = text.isascii() and text.lstrip("+-").isdigit() and len(text) <= 9
        if not (whole or (what != "a whole number" and _finite(text))):
            return f"header {key.decode()} must be {what}, not {text[:40]!r}"
        if what != "a whole number" and float(text) < 0:  # a 408 after the upstream was called anyway
            return f"header {key.decode()} must be a positive number of seconds, not {text[:40]!r}"
        if key == _RETRIES_HEADER and not 0 <= int(text) <= max_retries:
            return f"header {key.decode()} asks for {int(text)} retries; this proxy allows 0 to {max_retries} ({_SETTING})"
    return None


def _timeout_problem(name: str, value: Any) -> str | None:
    if not value:
        return None  # LiteLLM ignores 0, "", null, {}, []
    number = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _finite(value):
        number = float(value)
    if number is None or not math.isfinite(number) or number < 0:
        return f"{name} must be a positive number of seconds, not {json.dumps(value)[:40]}"
    return None


def _header_safe(name: str) -> bool:
    return all(31 < ord(c) < 256 and ord(c) != 127 for c in name)


def _guardrails_problem(body: dict[str, Any]) -> str | None:
    for where, bucket in (("", body), ("metadata.", body.get("metadata")), ("litellm_metadata.", body.get("litellm_metadata"))):
        names = bucket.get("guardrails") if isinstance(bucket, dict) else None
        for name in names if isinstance(names, list) else ():
            if isinstance(name, str) and not _header_safe(name):
                return (f"{where}guardrails holds {json.dumps(name)[:40]}: guardrail names must be printable Latin-1 text "
                        "(LiteLLM sends them back in the x-litellm-applied-guardrails header)")
    return None


def body_problem(body: Any, max_retries: int) -> str | None:
    """Why a parsed request body's retry, timeout or guardrails fields are refused (None: they are fine or absent)."""
    if not isinstance(body, dict):
        return None
    problem = _guardrails_problem(body)
    if problem:
        return problem
    for name in TIMEOUT_FIELDS:
        problem = _timeout_problem(name, body.get(name))
        if problem:
            return problem
    for name in RETRY_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole and not (isinstance(value, float) and value.is_integer()):
            return f"{name} must be a whole number of retries, not {json.dumps(value)[:40]}"
        if not 0 <= value <= max_retries:
            return f"{name} asks for {int(value)} retries; this proxy allows 0 to {max_retries} ({_SETTING})"
    return None


class ControlFieldScan:
    """Follows a JSON body as it streams through, chunk by chunk, and parses it once it is complete
    only when a checked field's name appears in it (a body without one costs two substring searches)."""

    __slots__ = ("max_retries", "chunks", "seen", "_tail")

    def __init__(self, max_retries: int) -> None:
        self.max_retries = max_retries
        self.chunks: list[bytes] = []  # the chunks the app is handed anyway: references, not copies
        self.seen = False
        self._tail = b""

    def feed(self, chunk: bytes, last: bool) -> str | None:
        """Take the next chunk; at the last one, why the body is refused (None: it is fine)."""
        if chunk:
            self.chunks.append(chunk)
            if not self.seen:
                edge = self._tail + chunk[:_TAIL]
                self.seen = any(mark in edge or mark in chunk for mark in _MARKS)
                self._tail = chunk[-_TAIL:]
        if not last:
            return None
        chunks, self.chunks = self.chunks, []
        if not self.seen:
            return None
        try:
            body = json.loads(b"".join(chunks))
        except (ValueError, RecursionError):
            return None  # no JSON: LiteLLM answers that itself
        return body_problem(body, self.max_retries)
