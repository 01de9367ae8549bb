"""What a request to one of the extension's models must look like, checked before LiteLLM sees it.

The ``mini-agent``, ``echo`` and ``codex-agent`` models are LiteLLM ``CustomLLM`` providers: they
answer chat completions (and the Responses API, which LiteLLM turns into chat completions for
them). LiteLLM answers some requests to them with a 500 — a route they do not serve (embeddings,
moderations, images, audio: "Not implemented yet!", or an OpenAI call to the model's ``api_base``
whose 404 puts the model in cooldown for every caller), a ``stream`` that is not a boolean, ``n`` > 1 (one
choice comes back), chat
messages or Responses input items of the wrong type (with a traceback in the message) — or drops
what it cannot translate (non-function tools on ``/v1/responses``). The request guard
(:mod:`proxy_ext.guard`) asks :func:`request_problem` for a 400 that says what to fix instead.

Only requests that name one of these models are parsed: :meth:`ServedModels.named_in` looks for the
names in the raw body first, so requests to every other model cost one byte search. A body with
JSON ``\\u`` or ``\\/`` escapes (``"mini-agent\\/x"`` is ``"mini-agent/x"``) is parsed to see
which model it names: such a name is checked like any other.

A ``previous_response_id`` is refused too where LiteLLM would drop the earlier turns without a
word (it rebuilds them from spend logs: a proxy without a database has none), and so is an
``item_reference`` input item (LiteLLM drops it always).

LiteLLM also refuses, with a 400 that tells the client to set ``drop_params``, the OpenAI fields
its generic list for custom providers lacks (``reasoning_effort``, ``verbosity``: the Agents SDK's
``ModelSettings(reasoning=…)``, LangChain's ``reasoning_effort``), though these models take them,
and it leaves a client's ``user`` out of their calls: :func:`accepted_params` names them for
LiteLLM's ``allowed_openai_params``.

No LiteLLM import here.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy_ext.providers.registry import PROVIDERS, model_entries, provider_of

__all__ = ["ACCEPTED_PARAMS", "ServedModels", "accepted_params", "agent_body_problem", "request_problem", "served_models"]

UNSERVED_ROUTES = ("/embeddings", "/moderations", "/images/generations", "/images/edits", "/images/variations",
                   "/audio/speech", "/rerank")
"""Path endings of LiteLLM's JSON routes these providers do not serve."""
_CHAT, _RESPONSES = "/chat/completions", "/responses"
ACCEPTED_PARAMS = ("reasoning_effort", "user", "verbosity")
"""OpenAI chat fields the extension's models take that LiteLLM's list for custom providers lacks
(it refuses ``reasoning_effort`` and ``verbosity``, and leaves ``user`` out of the call without a
word): ``codex-agent`` forwards them to its service; ``mini-agent`` and ``echo`` accept them without
applying them, as they accept ``temperature``."""


@dataclass(frozen=True)
class ServedModels:
    """The ``model_list`` names served by the extension's providers (wildcards as patterns)."""

    exact: frozenset[str]
    patterns: tuple[str, ...]
    needles: tuple[bytes, ...]
    """What the raw body of a request naming one of them contains (``"name"`` or ``"prefix``)."""

    agents: frozenset[str] = frozenset()
    """The names among them that run an agent (``mini-agent``; wildcards as patterns)."""
    agent_max_bytes: int | None = None
    """Largest body of a request to one of ``agents``: it is an agent run, with the body limit of
    ``/agent/run`` (``agent.limits.max_request_bytes``). None: not checked."""

    def named_in(self, raw: bytes) -> bool:
        """Whether the raw JSON body names one of these models (a body whose escapes could spell a
        name is parsed; one that is no JSON object names none)."""
        if any(needle in raw for needle in self.needles):
            return True
        if b"\\u" not in raw and b"\\/" not in raw:
            return False
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return False
        return isinstance(body, dict) and self.serves(body.get("model"))

    def serves(self, model: Any) -> bool:
        return isinstance(model, str) and (model in self.exact or any(fnmatch.fnmatchcase(model, p) for p in self.patterns))

    def runs_agent(self, model: Any) -> bool:
        return isinstance(model, str) and any(model == name or "*" in name and fnmatch.fnmatchcase(model, name) for name in self.agents)


def served_models(document: dict[str, Any], agent_max_bytes: int | None = None) -> ServedModels | None:
    """The models of this config served by the extension's providers (None: there are none);
    ``agent_max_bytes``: the body limit of requests to its agent models."""
    entries = [(name, provider_of(params)) for name, params in model_entries(document) if name]
    names = {name for name, provider in entries if provider in PROVIDERS}
    if not names:
        return None
    patterns = tuple(sorted(n for n in names if "*" in n))
    needles = {json.dumps(n.split("*", 1)[0])[:-1 if "*" in n else None].encode() for n in names}
    agents = frozenset(name for name, provider in entries if provider == "mini-agent")
    return ServedModels(frozenset(names - set(patterns)), patterns, tuple(sorted(needles)), agents, agent_max_bytes)


def agent_body_problem(body: dict[str, Any], size: int, served: ServedModels) -> str | None:
    """Why a ``size``-byte request ``body`` is too large (a 413), when it names an agent model."""
    limit, model = served.agent_max_bytes, body.get("model")
    if limit is None or size <= limit or not served.runs_agent(model):
        return None
    return (f"request body of {size} bytes exceeds the limit of {limit} bytes of an agent run (model {model!r} runs an agent: "
            "proxy_ext.agent.limits.max_request_bytes, as for /agent/run)")


def _route(path: str) -> str | None:
    """``chat``, ``responses``, ``unserved`` or None (a route this check leaves alone)."""
    if path.endswith(_CHAT):
        return "chat"
    if path in ("/v1/responses", _RESPONSES):
        return "responses"
    return "unserved" if path.endswith(UNSERVED_ROUTES) else None


USER_CONTENT_TYPES = ("text", "image_url", "input_audio", "audio_url", "document", "guarded_text", "grounding_source",
                      "query", "video_url", "file")
"""Content part types LiteLLM accepts in a user message (``litellm.types.llms.openai.ValidUserMessageContentTypes``);
any other part type, a missing one included, is a 500 from LiteLLM (retried, with a traceback)."""


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of message objects"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"messages[{index}] must be an object with a string role"
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"messages[{index}].content must be a string, a list of content parts or null"
        if message.get("tool_calls") is not None and not isinstance(message["tool_calls"], list):  # LiteLLM iterates it: a 500
            return f"messages[{index}].tool_calls must be a list of tool calls"
        if message["role"] != "user" or not isinstance(content, list):
            continue
        for part_index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") not in USER_CONTENT_TYPES:
                return (f"messages[{index}].content[{part_index}].type must be one of {', '.join(USER_CONTENT_TYPES)}, "
                        f"not {str(part.get('type'))[:40]!r}")
    return None


def _input_problem(items: Any) -> str | None:
    if isinstance(items, str):
        return None
    if not isinstance(items, list) or not items:
        return "input must be a string or a non-empty list of input items"
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return f"input[{index}] must be an object"
        if item.get("type") == "item_reference":  # LiteLLM's bridge to chat completions drops it without a word
            return (f"input[{index}] is an item_reference: these models keep no items to look it up, and the turn "
                    "would be answered without it. Send the item itself (the earlier message or function call) instead")
        content = item.get("content")
        if content is not None and not isinstance(content, str) and not (isinstance(content, list) and all(isinstance(p, dict) for p in content)):
            return f"input[{index}].content must be a string or a list of content objects"
        if item.get("call_id") is not None and not isinstance(item["call_id"], str):  # LiteLLM hashes it: a 500
            return f"input[{index}].call_id must be a string"
    return None


def _tools_problem(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools must be a list"
    for index, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            return f"tools[{index}] has type {kind!r}: these models take function tools only"
    return None


_RESPONSES_FIELDS = (("instructions", str, "a string"), ("reasoning", dict, "an object"), ("text", dict, "an object"),
                    ("metadata", dict, "an object"), ("previous_response_id", str, "a string"))


def _fields_problem(body: dict[str, Any]) -> str | None:
    for name, kind, what in _RESPONSES_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, kind):
            return f"{name} must be {what}"
    return None


def _session_problem(body: dict[str, Any], sessions_available: Callable[[], bool] | None) -> str | None:
    if body.get("previous_response_id") is None or sessions_available is None or sessions_available():
        return None
    return (f"previous_response_id cannot continue a conversation with model {body.get('model')!r} on this proxy: "
            "LiteLLM rebuilds the earlier turns from its spend logs, and there are none (no database_url, or spend logs "
            "disabled). Send the whole conversation as input instead")


def _output_problem(body: dict[str, Any], model: Any) -> str | None:
    """What a request asks these models to give that they cannot (text answers only, no token log
    probabilities): a 200 without it would look like a silent wrong answer to the client."""
    include = body.get("include")
    if body.get("logprobs") or body.get("top_logprobs") or (isinstance(include, list) and "message.output_text.logprobs" in include):
        return f"model {model!r} gives no token log probabilities: leave out logprobs / top_logprobs"
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and any(m != "text" for m in modalities)):
        return f"model {model!r} answers with text only: leave out audio and any modality but \"text\""
    return None


def request_problem(path: str, body: dict[str, Any], served: ServedModels,
                    sessions_available: Callable[[], bool] | None = None) -> str | None:
    """Why ``body`` (a JSON object sent to ``path``) cannot be served, when it names one of the
    ``served`` models (None: it can, or it names another model). ``sessions_available`` says
    whether LiteLLM can rebuild a ``previous_response_id`` conversation (asked only for a request
    that sends one; None: do not check)."""
    route = _route(path)
    model = body.get("model")
    if route is None or not served.serves(model):
        return None
    if route == "unserved":
        return f"model {model!r} is an agent or provider model of proxy_ext: it answers /v1/chat/completions and /v1/responses only"
    if "custom_llm_provider" in body:  # LiteLLM would call another provider with the model's credentials
        return f"custom_llm_provider cannot be chosen by a request for model {model!r}"
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream must be true or false"
    n = body.get("n")
    if n is not None and not (type(n) is int and n == 1):  # LiteLLM would forward it or drop it: one answer comes back
        return f"model {model!r} gives one answer per request: n={n!r} is not supported (use n=1)"
    for name in ("timeout", "stream_timeout"):  # LiteLLM's float() of a string was a 500
        value = body.get(name)
        if value is not None and (type(value) not in (int, float) or not value > 0):
            return f"{name} must be a positive number of seconds"
    problem = _output_problem(body, model)
    if problem:
        return problem
    if route == "chat":
        response_format = body.get("response_format")
        if response_format is not None and not isinstance(response_format, dict):  # LiteLLM's "Unsupported response_format type": a 500
            return 'response_format must be an object, e.g. {"type": "json_object"}'
        return _messages_problem(body.get("messages"))
    return (_input_problem(body.get("input")) or _tools_problem(body.get("tools")) or _fields_problem(body)
            or _session_problem(body, sessions_available))


def accepted_params(path: str, body: dict[str, Any], served: ServedModels) -> list[str]:
    """The fields of :data:`ACCEPTED_PARAMS` that ``body`` (a request :func:`request_problem` let
    through) sets for one of the ``served`` models, for LiteLLM's ``allowed_openai_params``
    (``[]``: none). On ``/v1/responses``, ``reasoning.effort`` is LiteLLM's ``reasoning_effort``."""
    route = _route(path)
    if route not in ("chat", "responses") or not served.serves(body.get("model")):
        return []
    wanted = [name for name in ACCEPTED_PARAMS if body.get(name) is not None]
    reasoning = body.get("reasoning")
    if route == "responses" and isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        wanted.append("reasoning_effort")
    return sorted(set(wanted))
