"""Unit tests of the check of requests naming the extension's models (proxy_ext.providers.request_check)."""

from __future__ import annotations

import json

import pytest

from proxy_ext.providers.request_check import accepted_params, agent_body_problem, request_problem, served_models

CONFIG = {"model_list": [
    {"model_name": "agent-researcher", "litellm_params": {"model": "mini-agent/researcher"}},
    {"model_name": "mini-agent/*", "litellm_params": {"model": "mini-agent/*"}},
    {"model_name": "codex", "litellm_params": {"model": "codex-agent/gpt-5"}},
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}},
]}
SERVED = served_models(CONFIG)
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_only_the_extensions_models_are_served_and_found_in_raw_bodies():
    assert SERVED is not None and served_models({"model_list": CONFIG["model_list"][3:]}) is None
    assert [SERVED.serves(m) for m in ("agent-researcher", "mini-agent/x", "codex", "gpt-4o", 5, None)] == [True, True, True, False, False, False]
    assert SERVED.named_in(json.dumps({"model": "mini-agent/x"}).encode())
    assert SERVED.named_in(b'{"model" : "codex"}')
    assert not SERVED.named_in(json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "codex agent"}]}).encode())
    # JSON escapes spell the same names: the body is parsed to see which model it names
    assert SERVED.named_in(b'{"model": "mini-agent\\/x"}') and SERVED.named_in(b'{"mod\\u0065l": "c\\u006fdex"}')
    assert not SERVED.named_in(b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "caf\\u00e9 \\/"}]}')
    assert not SERVED.named_in(b'["mini-agent\\/x"]') and not SERVED.named_in(b'{"model": "mini-agent\\/x"')


def test_a_request_to_an_agent_model_has_the_body_limit_of_an_agent_run():
    served = served_models(CONFIG, agent_max_bytes=1000)
    assert served is not None and SERVED is not None
    assert [served.runs_agent(m) for m in ("agent-researcher", "mini-agent/x", "codex", "gpt-4o", None)] == [True, True, False, False, False]
    problem = agent_body_problem({"model": "mini-agent/x", **CHAT}, 1001, served)
    assert problem is not None and "1001 bytes exceeds the limit of 1000 bytes" in problem and "agent.limits.max_request_bytes" in problem
    assert agent_body_problem({"model": "agent-researcher", **CHAT}, 1000, served) is None
    assert agent_body_problem({"model": "codex", **CHAT}, 10**7, served) is None  # not an agent: the guard's own limit
    assert agent_body_problem({"model": "mini-agent/x", **CHAT}, 10**7, SERVED) is None  # no limit given


@pytest.mark.parametrize("path, body, expected", [
    ("/v1/embeddings", {"model": "codex", "input": "x"}, "answers /v1/chat/completions and /v1/responses only"),
    ("/v1/moderations", {"model": "agent-researcher", "input": "x"}, "answers /v1/chat/completions"),
    ("/v1/audio/speech", {"model": "mini-agent/a", "input": "x"}, "answers /v1/chat/completions"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "stream": "yes"}, "stream must be true or false"),
    ("/chat/completions", {"model": "codex", **CHAT, "stream": 1}, "stream must be true or false"),
    ("/v1/chat/completions", {"model": "codex", "messages": ["x"]}, "messages[0] must be an object with a string role"),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": {}}]}, "messages[0] must be an object with a string role"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "response_format": True}, "response_format must be an object"),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": "assistant", "tool_calls": {}}]}, "messages[0].tool_calls must be a list"),
    ("/v1/responses", {"model": "codex", "input": [{"type": "function_call", "call_id": [], "name": "f"}]}, "input[0].call_id must be a string"),
    ("/v1/chat/completions", {"model": "codex", "messages": "hi"}, "messages must be a non-empty list"),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": "user", "content": 5}]},
     "messages[0].content must be a string, a list of content parts or null"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "timeout": "x"}, "timeout must be a positive number of seconds"),
    ("/v1/responses", {"model": "codex", "input": "x", "timeout": float("nan")}, "timeout must be a positive number"),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
     "messages[0].content[0].type must be one of text, image_url"),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "tool_result", "content": "y"}]}]}, "messages[1].content[1].type must be one of"),
    ("/v1/responses", {"model": "codex", "input": [{"role": "user", "content": 5}]}, "input[0].content must be a string or a list"),
    ("/v1/responses", {"model": "codex", "input": 5}, "input must be a string or a non-empty list"),
    ("/v1/responses", {"model": "agent-researcher", "input": [{"type": "item_reference", "id": "msg_1"}, {"role": "user", "content": "and?"}]},
     "input[0] is an item_reference: these models keep no items to look it up"),
    ("/v1/responses", {"model": "codex", "input": "x", "tools": [{"type": "web_search_preview"}]}, "tools[0] has type 'web_search_preview'"),
    ("/v1/responses", {"model": "codex", "input": "x", "reasoning": 5}, "reasoning must be an object"),
    ("/v1/responses", {"model": "codex", "input": "x", "stream": "yes"}, "stream must be true or false"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "custom_llm_provider": "openai"}, "custom_llm_provider cannot be chosen"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "n": 2}, "model 'codex' gives one answer per request: n=2"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "n": True}, "n=True is not supported"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "logprobs": True}, "gives no token log probabilities"),
    ("/v1/chat/completions", {"model": "agent-researcher", **CHAT, "logprobs": True, "top_logprobs": 3}, "leave out logprobs"),
    ("/v1/responses", {"model": "codex", "input": "x", "top_logprobs": 2}, "gives no token log probabilities"),
    ("/v1/responses", {"model": "codex", "input": "x", "include": ["message.output_text.logprobs"]}, "log probabilities"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "modalities": ["text", "audio"]}, "answers with text only"),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "audio": {"voice": "alloy", "format": "wav"}}, "answers with text only"),
])
def test_what_the_models_cannot_serve_gets_a_message_saying_what_to_fix(path, body, expected):
    problem = request_problem(path, body, SERVED)
    assert problem is not None and expected in problem, problem


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "codex", **CHAT, "stream": True}),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "timeout": 30, "stream_timeout": 2.5}),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "logprobs": False, "top_logprobs": 0, "modalities": ["text"], "audio": None}),
    ("/v1/responses", {"model": "codex", "input": "x", "include": ["reasoning.encrypted_content"], "top_logprobs": None}),
    ("/v1/chat/completions", {"model": "codex", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
    ("/v1/responses", {"model": "codex", "input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}],
                       "tools": [{"type": "function", "name": "f"}], "reasoning": {"effort": "low"}}),
    ("/v1/embeddings", {"model": "gpt-4o", "input": "x"}),  # not ours: LiteLLM's business
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": ["x"], "stream": "yes"}),
    ("/v1/messages", {"model": "codex", "messages": [{"role": "user", "content": "x"}]}),  # a route this check leaves alone
])
def test_what_they_serve_and_other_models_pass(path, body):
    assert request_problem(path, body, SERVED) is None


@pytest.mark.parametrize("path, body, expected", [
    ("/v1/chat/completions", {"model": "agent-researcher", **CHAT, "reasoning_effort": "low", "verbosity": "low"}, ["reasoning_effort", "verbosity"]),
    ("/chat/completions", {"model": "codex", **CHAT, "reasoning_effort": "high"}, ["reasoning_effort"]),
    ("/v1/responses", {"model": "mini-agent/a", "input": "x", "reasoning": {"effort": "low", "summary": "auto"}}, ["reasoning_effort"]),
    ("/v1/responses", {"model": "codex", "input": "x", "reasoning": {"summary": "auto"}}, []),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "reasoning_effort": None, "temperature": 0.2}, []),
    ("/v1/chat/completions", {"model": "codex", **CHAT, "user": "end-user-7"}, ["user"]),
    ("/v1/chat/completions", {"model": "gpt-4o", **CHAT, "reasoning_effort": "low"}, []),  # LiteLLM's own providers decide
    ("/v1/embeddings", {"model": "codex", "input": "x", "verbosity": "low"}, []),
])
def test_fields_litellm_must_let_through_to_the_extensions_models(path, body, expected):
    assert accepted_params(path, body, SERVED) == expected


def test_previous_response_id_is_refused_only_where_litellm_would_drop_the_earlier_turns():
    body = {"model": "agent-researcher", "input": "and then?", "previous_response_id": "resp_1"}
    assert "Send the whole conversation as input" in request_problem("/v1/responses", body, SERVED, lambda: False)
    assert request_problem("/v1/responses", body, SERVED, lambda: True) is None  # a database: LiteLLM rebuilds them
    assert request_problem("/v1/responses", body, SERVED) is None
    asked: list[bool] = []
    assert request_problem("/v1/responses", {**body, "previous_response_id": None}, SERVED, lambda: asked.append(True) or False) is None
    assert request_problem("/v1/responses", {**body, "model": "gpt-4o"}, SERVED, lambda: asked.append(True) or False) is None
    assert asked == []  # only a request that sends one, to one of these models, asks
