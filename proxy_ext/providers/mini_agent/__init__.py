"""``mini-agent/<profile>``: agent profiles as models of the proxy.

Any OpenAI client runs an agent with a plain chat completion (or a Responses API call)::

    litellm_settings:
      callbacks: ["proxy_ext.extension"]          # required: registers the provider, carries the caller's identity
    model_list:
      - model_name: agent-researcher              # no "prefix/": every client library accepts it
        litellm_params: {model: mini-agent/researcher}

The chat messages are the run's input; the final answer is the assistant message; usage sums the
run's model turns, and the cost hook makes ``usage.cost`` the run's summed cost (noted on the
request by :func:`proxy_ext.hooks.cost.note_agent_run_cost`; the spend logs already hold the run's
model calls, LiteLLM prices this outer call at 0). The envelope's metrics are in
``choices[0].message.provider_specific_fields["mini_agent"]`` of non-streamed replies; streams carry
standard chunks only.

The client's OpenAI ``tools`` join the run's tools (:mod:`.client_tools`): a call to one ends the run
and is handed back as a ``finish_reason: "tool_calls"`` turn for the client to execute. The client's
``response_format`` is passed on to every model call of the run.

The agent's own model calls go through the proxy *as the caller* (their key, model list, budget and
rate limits), exactly as for ``POST /agent/run``; a profile can never name a model served by an
agent profile (rejected at start-up), so runs cannot recurse.

A run that does not end with an answer (budget, timeout, errors) is an error response (400 with the
stopped reason and trace id), never an empty answer; LiteLLM does not retry 400s, so a failed run is
not silently paid for twice.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, Message, ModelResponse, Usage

from proxy_ext.providers.errors import provider_error
from proxy_ext.providers.mini_agent.client_tools import ClientToolError, client_tools, model_params
from proxy_ext.providers.chunks import final_chunk, text_chunk, tool_call_chunk, usage_dict

__all__ = ["MiniAgentLLM", "handler"]

PROVIDER = "mini-agent"
PROVIDER_FIELD = "mini_agent"
"""The key of the run's metrics in a reply message's ``provider_specific_fields``."""


def _profile_name(model: str) -> str:
    return model.split("/", 1)[1] if model.startswith(f"{PROVIDER}/") else model


def _raise_for(status: int, message: str, model: str, retry_after_s: int | None = None) -> NoReturn:
    raise provider_error(PROVIDER, status, message, model, retry_after_s=retry_after_s)


def _input_message(message: Any) -> dict[str, Any]:
    """A message of the client's conversation as run input, without the metrics this provider put
    on an earlier reply (``provider_specific_fields.mini_agent``): a client that appends the reply's
    message to its conversation (``messages.append(reply.choices[0].message)``) sends them back, and
    they are not for the run's models (its upstream got an earlier run's trace id and cost)."""
    copy = dict(message)
    extra = copy.get("provider_specific_fields")
    if isinstance(extra, dict) and PROVIDER_FIELD in extra:
        rest = {key: value for key, value in extra.items() if key != PROVIDER_FIELD}
        if rest:
            copy["provider_specific_fields"] = rest
        else:
            del copy["provider_specific_fields"]
    return copy


async def _start(model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any] | None,
                 litellm_params: dict[str, Any] | None, stream_text: bool = False) -> Any:
    """Start the profile's agent on ``messages`` (with the client's ``tools``) through the run
    facade, as the caller of the current request; the started run."""
    from pydantic import ValidationError

    from proxy_ext import litellm_adapter as adapter
    from proxy_ext.agent import facade
    from proxy_ext.agent.request import AgentRunRequest
    from proxy_ext.exceptions import ProxyExtError
    from proxy_ext.request_context import current_request
    from proxy_ext.state import get_runtime

    profile = _profile_name(model)
    runtime = get_runtime()
    agent = runtime.settings.agent
    request = current_request()
    if request is None:
        _raise_for(400, "mini-agent models run inside the proxy with the extension enabled: add \"proxy_ext.extension\" "
                        "to litellm_settings.callbacks", model)
    if profile not in agent.profiles:
        known = ", ".join(sorted(agent.profiles)) or "none configured"
        _raise_for(400, f"no agent profile {profile!r} in proxy_ext.agent.profiles (known: {known})", model)
    try:
        tools = client_tools(profile, optional_params)
        params = model_params(profile, optional_params)
        parsed = AgentRunRequest(messages=[_input_message(m) for m in messages], profile=profile)  # type: ignore[misc]  # validated here
        caller = facade.Caller(request.headers, request.server, request.scheme, adapter.caller_identity(litellm_params), request.client)
        return await facade.start(parsed, caller, client_tools=tuple(tools), model_params=params, stream_text=stream_text,
                                  runtime=runtime)
    except ClientToolError as exc:
        _raise_for(400, str(exc), model)
    except ValidationError as exc:
        _raise_for(400, f"invalid messages for an agent run: {exc.errors()[0]['msg']}", model)
    except ProxyExtError as exc:
        _raise_for(exc.status, exc.message, model, exc.retry_after_s)


async def _finish(run: Any, model: str) -> Any:
    """The run's result, or the provider error a failed run is (a run without an answer is an
    error response, never an empty answer)."""
    from proxy_ext.exceptions import ProxyExtError
    from proxy_ext.hooks.cost import note_agent_run_cost

    try:
        result = await run.result()
    except ProxyExtError as exc:
        _raise_for(exc.status, exc.message, model, exc.retry_after_s)
    envelope = result.envelope
    if not envelope.ok:
        _raise_for(400, f"agent run stopped: {envelope.stopped_reason}: {envelope.metrics.error} "
                        f"(trace_id {envelope.metrics.trace_id})", model)
    note_agent_run_cost(envelope.metrics.cost_usd, result.usage.input_cost_usd, result.usage.output_cost_usd)
    return result


def _metrics(envelope: Any) -> dict[str, Any]:
    body = envelope.to_dict()
    return {"stopped_reason": body["stopped_reason"], **body["metrics"]}


def _usage(envelope: Any) -> dict[str, Any]:
    return usage_dict(envelope.metrics.prompt_tokens, envelope.metrics.completion_tokens)


def _answer(envelope: Any) -> tuple[str, list[dict[str, Any]]]:
    """(text, client tool calls) of the reply: the final answer, or the turn that called client tools."""
    if envelope.stopped_reason == "tool_calls":
        message = envelope.messages[-1]
        return message.get("content") or "", list(message["tool_calls"])
    return envelope.final_answer or "", []


class MiniAgentLLM(CustomLLM):
    """LiteLLM CustomLLM handler for ``mini-agent/<profile>`` models (async paths; the proxy uses those)."""

    async def acompletion(self, model: str, messages: list, *args: Any, model_response: ModelResponse,  # type: ignore[override]
                          optional_params: dict[str, Any] | None = None, **kwargs: Any) -> ModelResponse:
        run = await _start(model, messages, optional_params, kwargs.get("litellm_params"))
        envelope = (await _finish(run, model)).envelope
        profile = _profile_name(model)
        text, calls = _answer(envelope)
        model_response.choices[0].message = Message(  # type: ignore[union-attr]
            content=text or (None if calls else ""), role="assistant", tool_calls=calls or None,
            provider_specific_fields={PROVIDER_FIELD: _metrics(envelope)})
        model_response.choices[0].finish_reason = "tool_calls" if calls else "stop"
        model_response.model = f"{PROVIDER}/{profile}"
        model_response.created = int(time.time())
        setattr(model_response, "usage", Usage(**_usage(envelope)))
        return model_response

    async def astreaming(self, model: str, messages: list, *args: Any, optional_params: dict[str, Any] | None = None,  # type: ignore[override]
                         **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        """Answer text streams as the agent's models produce it; client tool calls and usage come
        last (the run's metrics are in the trace record and non-streamed replies)."""
        from proxy_ext.agent.events import AnswerDelta

        run = await _start(model, messages, optional_params, kwargs.get("litellm_params"), stream_text=True)
        reader = run.events.reader()
        streamed = False
        try:
            async for event in reader:
                if isinstance(event, AnswerDelta):
                    streamed = True
                    yield text_chunk(event.text)
            result = await _finish(run, model)  # a failed run raises its provider error here
        finally:
            # The client went away (or the stream ended): cancel the run. No await here: this may run
            # in a cancelled scope; the run task cleans up after itself and frees its slot.
            reader.close()
            run.cancel()
        text, calls = _answer(result.envelope)
        if not streamed and text:  # e.g. a model that does not stream
            yield text_chunk(text)
        for index, call in enumerate(calls):
            yield tool_call_chunk(index, call)
        yield final_chunk("tool_calls" if calls else "stop", _usage(result.envelope))

    def completion(self, model: str, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        _raise_for(400, "mini-agent models are served by the proxy's async path only; call them through the proxy", model)

    def streaming(self, model: str, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        _raise_for(400, "mini-agent models are served by the proxy's async path only; call them through the proxy", model)


handler = MiniAgentLLM()
"""The handler registered for the ``mini-agent`` provider."""
