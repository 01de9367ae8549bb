"""The echo model's ``call <tool> {...}`` directive: tools (and approvals) can be tried with no real
model — through the real proxy, plain and streamed, and as a unit."""

from __future__ import annotations

import httpx

from proxy_ext.providers.echo import echo_reply

CALC = [{"type": "function", "function": {"name": "calculator", "parameters": {}}}]


def test_echo_reply_calls_an_offered_tool_then_answers_with_its_result():
    text, call = echo_reply([{"role": "user", "content": 'call calculator {"expression": "6*7"}'}], CALC)
    assert text == "" and call["function"] == {"name": "calculator", "arguments": '{"expression": "6*7"}'}
    after = [{"role": "user", "content": 'call calculator {"expression": "6*7"}'},
             {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"], "content": "42"}]
    assert echo_reply(after, CALC) == ("42", None)


def test_echo_reply_is_plain_echo_otherwise():
    assert echo_reply([{"role": "user", "content": "call calculator {}"}], None) == ("call calculator {}", None)  # not offered
    assert echo_reply([{"role": "user", "content": "please call calculator"}], CALC) == ("please call calculator", None)
    assert echo_reply([{"role": "user", "content": "call calculator {nope"}], CALC)[1] is None


def test_the_agent_runs_a_tool_the_echo_model_calls(proxy):
    for stream in (False, True):
        response = httpx.post(f"{proxy.base_url}/agent/run", headers=proxy.headers, timeout=30,
                              json={"input": 'call calculator {"expression": "6*7"}', "model": "echo", "tools": ["calculator"], "stream": stream})
        assert response.status_code == 200, response.text
        if stream:
            assert '"name":"calculator"' in response.text and "event: run_completed" in response.text and '"final_answer":"42"' in response.text
        else:
            assert response.json()["final_answer"] == "42" and response.json()["metrics"]["tool_calls"] == 1
