"""``codex-agent`` / ``codex_cli_agent``: a Codex agent as a LiteLLM model.

Both names are aliases of this one handler, as in the fork. The extension's callbacks line
registers them (``proxy_ext.providers.registry``); ``custom_provider_map`` entries naming
``proxy_ext.providers.codex_agent.handler`` are optional and still accepted.

Every model runs in HTTP mode (:mod:`.http`) unless it chooses the local codex CLI (:mod:`.cli`)
with ``litellm_params.codex_agent.mode: cli`` (or the section's ``mode: cli`` for all codex models);
the alias never implies a mode. The provider refuses every call with a 403 until it is enabled
(``providers.codex_agent.enabled: true`` or ``LITELLM_ENABLE_CODEX_AGENT=1``). See
docs/providers/codex_agent.md.

Inside the proxy a model's settings (mode, CLI settings, base URL, key, upstream model name) come
only from its Router deployment, the section and the environment: a request body's ``api_key``,
``api_base``, ``base_url`` or ``custom_llm_provider`` never changes how or where a model runs
(rules in :mod:`.settings`).

This is a package (not a module file ``codex_agent.py``) on purpose: LiteLLM's ``get_instance_fn``
would load a file ``proxy_ext/providers/codex_agent.py`` next to the config by path, as a second
module instance.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse, Usage

from proxy_ext import litellm_adapter as adapter
from proxy_ext import request_context
from proxy_ext.config import ProxyExtConfig
from proxy_ext.providers.codex_agent import cli, errors, http
from proxy_ext.providers.codex_agent.events import CodexRun, render_prompt
from proxy_ext.providers.codex_agent.settings import OVERRIDE_KEY, CallSettings, resolve
from proxy_ext.state import Runtime
from proxy_ext.providers.chunks import final_chunk, text_chunk, usage_dict

__all__ = ["CodexAgentLLM", "doctor_problems", "handler"]


def _usage(run: CodexRun) -> Usage:
    return Usage(
        prompt_tokens=run.input_tokens,
        completion_tokens=run.output_tokens,
        total_tokens=run.input_tokens + run.output_tokens,
        prompt_tokens_details={"cached_tokens": run.cached_input_tokens},
    )


def _cli_response(run: CodexRun, settings: CallSettings, model_response: ModelResponse) -> ModelResponse:
    model_response.choices[0].message.content = run.answer  # type: ignore[union-attr]
    model_response.choices[0].finish_reason = "stop"
    model_response.model = settings.model
    model_response.created = int(time.time())
    setattr(model_response, "usage", _usage(run))
    return model_response


def _final_chunk(run: CodexRun) -> GenericStreamingChunk:
    return final_chunk("stop", usage_dict(run.input_tokens, run.output_tokens))


class CodexAgentLLM(CustomLLM):
    """The LiteLLM ``CustomLLM`` behind both provider aliases."""

    @staticmethod
    def _settings(model: str, kwargs: dict[str, Any]) -> CallSettings:
        litellm_params = kwargs.get("litellm_params") or {}
        optional_params = kwargs.get("optional_params") or {}
        n = optional_params.get("n")
        if n is not None and not (type(n) is int and n == 1):  # a codex agent gives one answer (the guard says so first)
            raise errors.bad_request(f"model {model!r} gives one answer per request: n={n!r} is not supported (use n=1)", model)
        return resolve(
            litellm_params.get("custom_llm_provider"), model, kwargs.get("api_base"), kwargs.get("api_key"),
            optional_params, litellm_params,
        )

    @staticmethod
    def _params(kwargs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (kwargs.get("optional_params") or {}).items() if k != OVERRIDE_KEY}

    def completion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        settings = self._settings(model, kwargs)
        if settings.mode == "http":
            return http.complete(settings, messages, self._params(kwargs), model_response, kwargs.get("timeout"))
        run = CodexRun()
        for _ in cli.iterate_in_thread(lambda: cli.run_events(settings, render_prompt(messages), run, kwargs.get("timeout"))):
            pass
        return _cli_response(run, settings, model_response)

    async def acompletion(self, model: str, messages: list, *args: Any, model_response: ModelResponse, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        settings = self._settings(model, kwargs)
        if settings.mode == "http":
            return await http.acomplete(settings, messages, self._params(kwargs), model_response, kwargs.get("timeout"))
        run = CodexRun()
        async for _ in cli.run_events(settings, render_prompt(messages), run, kwargs.get("timeout")):
            pass
        return _cli_response(run, settings, model_response)

    def streaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:  # type: ignore[override]
        settings = self._settings(model, kwargs)
        if settings.mode == "http":
            yield from http.stream(settings, messages, self._params(kwargs), kwargs.get("timeout"))
            return
        run = CodexRun()
        for text in cli.iterate_in_thread(lambda: cli.run_events(settings, render_prompt(messages), run, kwargs.get("timeout"))):
            yield text_chunk(text)
        yield _final_chunk(run)

    async def astreaming(self, model: str, messages: list, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:  # type: ignore[override]
        settings = self._settings(model, kwargs)
        if settings.mode == "http":
            async for chunk in http.astream(settings, messages, self._params(kwargs), kwargs.get("timeout")):
                yield chunk
            return
        run = CodexRun()
        events = cli.run_events(settings, render_prompt(messages), run, kwargs.get("timeout"))
        try:
            async for text in events:
                yield text_chunk(text)
        finally:
            await events.aclose()  # on disconnect: the CLI's process group is killed now, not at GC
        yield _final_chunk(run)


def doctor_problems(settings: ProxyExtConfig, runtime: Runtime | None = None) -> list[str]:
    """Configuration problems of an enabled provider that ``proxy-ext doctor`` should report."""
    cli_config = settings.providers.codex_agent.cli
    problems = []
    if cli_config.workspace is not None:
        path = (runtime or Runtime(settings=settings)).resolve_path(cli_config.workspace)
        if not path.is_dir():
            problems.append(f"cli.workspace {path} is not a directory")
    return problems


handler = CodexAgentLLM()
"""The handler registered for both aliases."""


def _watch_clients() -> None:
    # Loaded by a proxy without the extension's callbacks line, nothing else puts the request
    # context around it, and a codex run could not see its client hang up before a first chunk.
    app = adapter.running_proxy_app()
    if app is not None:
        request_context.install(app)


_watch_clients()
