"""LiteLLM's cost figures for proxy_ext.hooks.cost.

Part of :mod:`proxy_ext.litellm_adapter` (import the names from there); LiteLLM only inside the
functions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["call_cost", "cost_response_kind", "stream_chunk_cost"]


# ------------------------------------------------------------------------------- cost glue
# What proxy_ext.hooks.cost needs from LiteLLM internals, and nothing else: which response types
# are JSON bodies of the four routes, and the per-call cost LiteLLM computed (the figure it sends
# as ``x-litellm-response-cost``) with its input/output split from the logging object.


def cost_response_kind(response: Any) -> str | None:
    """'chat' | 'text_completion' | 'embedding' | 'responses' for a non-streaming JSON body of
    /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses; None for anything else
    (audio, files, images, …: those pass through untouched)."""
    from litellm.types.llms.openai import ResponsesAPIResponse
    from litellm.types.utils import EmbeddingResponse, ModelResponse, TextCompletionResponse

    if isinstance(response, ModelResponse):
        return "chat"
    if isinstance(response, TextCompletionResponse):
        return "text_completion"
    if isinstance(response, EmbeddingResponse):
        return "embedding"
    if isinstance(response, ResponsesAPIResponse):
        return "responses"
    return None


def _logging_obj(data: dict[str, Any] | None) -> Any:
    from litellm.litellm_core_utils.litellm_logging import Logging

    candidate = (data or {}).get("litellm_logging_obj")
    return candidate if isinstance(candidate, Logging) else None


def _split(breakdown: Any) -> tuple[float | None, float | None]:
    """(input, output) USD from a LiteLLM cost breakdown; input includes cache read/creation costs."""
    if not isinstance(breakdown, dict):
        return None, None
    values = breakdown.get("input_cost"), breakdown.get("output_cost")
    return tuple(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in values)  # type: ignore[return-value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def call_cost(response: Any, data: dict[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    """(total, input, output) USD of a non-streaming call, as LiteLLM's response headers report it.

    Mirrors ``ProxyBaseLLMRequestProcessing.base_process_llm_request``: the header's figure is
    ``_hidden_params["response_cost"]``, else the cost stored on (or recomputed by) the call's
    logging object; the split is the logging object's ``cost_breakdown``.
    """
    from litellm.router_utils.add_retry_fallback_headers import get_hidden_params_dict

    total = _number(get_hidden_params_dict(response).get("response_cost"))
    logging_obj = _logging_obj(data)
    if logging_obj is None:
        return total, None, None
    if total is None:
        total = _number(logging_obj.model_call_details.get("response_cost"))
    if total is None:
        return _priced_without_side_effects(logging_obj, response)
    return (total, *_split(getattr(logging_obj, "cost_breakdown", None)))


def _priced_without_side_effects(logging_obj: Any, result: Any) -> tuple[float | None, float | None, float | None]:
    # Pricing stamps cost_breakdown and a failure-debug key onto the live logging object, which the
    # spend log reads later; snapshot and restore both (as the proxy's own stream cost injection
    # does) so pricing a stream chunk stays a read.
    breakdown_before = getattr(logging_obj, "cost_breakdown", None)
    details = logging_obj.model_call_details
    debug_key = "response_cost_failure_debug_information"
    missing = object()
    debug_before = details.get(debug_key, missing)
    try:
        # LiteLLM < 1.105 names it _response_cost_calculator (same signature).
        calculator = getattr(logging_obj, "response_cost_calculator", None) or logging_obj._response_cost_calculator
        total = _number(calculator(result=result))
        split = _split(getattr(logging_obj, "cost_breakdown", None)) if total is not None else (None, None)
    finally:
        logging_obj.cost_breakdown = breakdown_before
        if debug_before is missing:
            details.pop(debug_key, None)
        else:
            details[debug_key] = debug_before
    return (total, *split)


def stream_chunk_cost(chunk: Any, data: dict[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    """(total, input, output) USD for a streamed call, priced from the chunk that carries usage (a
    chat / text completion chunk with ``usage``, or a Responses ``response.completed`` event).

    Priced by the call's logging object, so the deployment's custom pricing applies exactly as in
    the cost LiteLLM records for the call."""
    logging_obj = _logging_obj(data)
    if logging_obj is None:
        return None, None, None
    priced = _priced_without_side_effects(logging_obj, chunk)
    response = getattr(chunk, "response", None) if getattr(chunk, "type", None) == "response.completed" else None
    if not priced[0] and response is not None and getattr(response, "usage", None) is not None:
        # LiteLLM < 1.105 prices a response.completed event at 0: price the response it carries.
        priced = _priced_without_side_effects(logging_obj, response)
    return priced
