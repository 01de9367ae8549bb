"""The public response helpers on real OpenAI SDK objects, LiteLLM objects and plain dicts."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from proxy_ext import assemble_stream_text, augment_json_with_cost, extract_content
from proxy_ext.response_utils import ExtractedContent, ToolCall, assemble_stream_texts

CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "let me add",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}}]}},
        {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "second choice"}},
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}
PARTS = {"role": "assistant", "content": [{"type": "text", "text": "one "}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "two"}]}
RESPONSE = {
    "id": "resp_1", "object": "response", "created_at": 1, "model": "m", "status": "completed",
    "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    "output": [
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "hello ", "annotations": []}, {"type": "output_text", "text": "world", "annotations": []}]},
        {"id": "fc_1", "type": "function_call", "call_id": "call_9", "name": "lookup", "arguments": "{}", "status": "completed"},
    ],
    "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5,
              "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
}


def _chunk(content, index=0, finish=None, role=None):
    delta = {} if content is None else {"content": content}
    if role:
        delta["role"] = role
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


STREAM = [
    _chunk("", role="assistant"), _chunk("Hel"), _chunk(None), _chunk("lo"), _chunk("other", index=1),
    _chunk(None, finish="stop"),
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
]


def _litellm():
    from litellm.types.llms.openai import ResponsesAPIResponse
    from litellm.types.utils import ModelResponse, ModelResponseStream, TextCompletionResponse

    return ModelResponse, ModelResponseStream, TextCompletionResponse, ResponsesAPIResponse


# ----------------------------------------------------------------------------- extract_content


@pytest.mark.parametrize("make", [dict, ChatCompletion.model_validate, lambda d: _litellm()[0](**copy.deepcopy(d))], ids=["dict", "openai", "litellm"])
def test_extract_content_text_and_tool_calls(make):
    content = extract_content(make(CHAT))
    assert content.text == "let me add"
    assert content.tool_calls == [ToolCall(name="add", arguments='{"a": 1, "b": 2}', id="call_1")]
    assert content.tool_calls[0].parsed_arguments() == {"a": 1, "b": 2}
    assert extract_content(make(CHAT), index=1).text == "second choice"
    assert extract_content(make(CHAT), index=5) == ExtractedContent()


def test_extract_content_joins_text_parts_and_handles_null_content():
    assert extract_content({"choices": [{"index": 0, "message": PARTS}]}).text == "one two"
    assert extract_content(PARTS).text == "one two"  # a bare message
    empty = extract_content({"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]})
    assert empty == ExtractedContent(text="", tool_calls=[])
    assert extract_content(None) == ExtractedContent()


@pytest.mark.parametrize("make", [dict, Response.model_validate, lambda d: _litellm()[3](**copy.deepcopy(d))], ids=["dict", "openai", "litellm"])
def test_extract_content_from_responses_api_objects(make):
    content = extract_content(make(RESPONSE))
    assert content.text == "hello world"
    assert content.tool_calls == [ToolCall(name="lookup", arguments="{}", id="call_9")]


def test_extract_content_from_text_completions():
    body = {"id": "x", "object": "text_completion", "created": 1, "model": "m", "choices": [{"index": 0, "text": "done", "finish_reason": "stop", "logprobs": None}]}
    assert extract_content(body).text == "done"
    assert extract_content(Completion.model_validate(body)).text == "done"
    TextCompletionResponse = _litellm()[2]
    litellm_obj = TextCompletionResponse(**copy.deepcopy(body))
    assert extract_content(litellm_obj).text == "done"


# ----------------------------------------------------------------------------- assemble_stream_text


@pytest.mark.parametrize(
    "make",
    [dict, ChatCompletionChunk.model_validate, lambda d: _litellm()[1](**copy.deepcopy(d))],
    ids=["dict", "openai", "litellm"],
)
def test_assemble_stream_text_by_choice_index(make):
    chunks = [make(c) for c in STREAM]
    assert assemble_stream_text(chunks) == "Hello"
    assert assemble_stream_text(chunks, index=1) == "other"
    assert assemble_stream_text(chunks, index=2) == ""
    assert assemble_stream_texts(chunks) == {0: "Hello", 1: "other"}


def test_assemble_stream_text_tolerates_none_and_empty_deltas_and_reads_iterators():
    chunks = iter([None, {"choices": []}, {"choices": [{"index": 0, "delta": None}]}, {"choices": [{"index": 0, "delta": {"content": None}}]},
                   {"choices": [{"index": 0, "text": "text "}]}, {"choices": [{"index": 0, "delta": {"content": "chunk"}}]}])
    assert assemble_stream_text(chunks) == "text chunk"


def test_assemble_stream_text_from_responses_events():
    events = [{"type": "response.created"}, {"type": "response.output_text.delta", "delta": "hel"},
              {"type": "response.output_text.delta", "delta": "lo"}, {"type": "response.completed", "response": RESPONSE}]
    assert assemble_stream_text(events) == "hello"


# ----------------------------------------------------------------------------- augment_json_with_cost


def test_augment_json_with_cost_returns_a_new_dict_and_does_not_mutate():
    original = copy.deepcopy(CHAT)
    result = augment_json_with_cost(original, 0.0042, input_cost=0.003, output_cost=0.0012)
    assert original == CHAT
    assert result["usage"] == {**CHAT["usage"], "cost": 0.0042, "cost_details": {"input_cost": 0.003, "output_cost": 0.0012}}
    assert result["choices"] is original["choices"]  # untouched parts are shared, not copied
    assert ChatCompletion.model_validate(result).usage.cost == 0.0042


def test_augment_json_with_cost_without_usage_or_split_and_on_completed_events():
    assert augment_json_with_cost({"object": "list", "usage": None}, 1)["usage"] == {"cost": 1.0}
    assert "cost_details" not in augment_json_with_cost({"usage": {}}, 0.5)["usage"]
    event = {"type": "response.completed", "response": RESPONSE}
    result = augment_json_with_cost(event, 0.25)
    assert result["response"]["usage"]["cost"] == 0.25 and "cost" not in RESPONSE["usage"]
    with pytest.raises(TypeError, match="JSON object"):
        augment_json_with_cost(["not", "a", "dict"], 1.0)  # type: ignore[arg-type]


def test_helpers_do_not_import_litellm():
    code = "import sys; from proxy_ext import extract_content, assemble_stream_text, augment_json_with_cost; print('litellm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
