"""The client's tools on a mini-agent request: what is offered, what is refused (a 400 naming the profile)."""

from __future__ import annotations

import pytest

from proxy_ext.providers.mini_agent.client_tools import ClientToolError, client_tools

WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object"},
                                            "strict": False, "x-extra": "dropped"}}


def test_function_tools_are_cleaned_and_offered():
    assert client_tools("demo", {"tools": [WEATHER], "tool_choice": "auto", "temperature": 0.1}) == (
        {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object"}, "strict": False}},)
    assert client_tools("demo", {"tools": [{"type": "function", "function": {"name": "t-1"}}]}) == (
        {"type": "function", "function": {"name": "t-1"}},)


def test_no_tools_and_tool_choice_none_offer_nothing():
    assert client_tools("demo", None) == () and client_tools("demo", {}) == ()
    assert client_tools("demo", {"tools": [WEATHER], "tool_choice": "none"}) == ()


@pytest.mark.parametrize("params, needle", [
    ({"tools": [WEATHER], "tool_choice": "required"}, "agent profile 'demo' runs its own tool loop"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "weather"}}}, "'a named function' is not supported"),
    ({"tools": {"weather": WEATHER}}, "tools must be a list"),
    ({"tools": ["weather"]}, "tools[0] must be an object"),
    ({"tools": [{"type": "web_search"}]}, "agent profile 'demo' accepts only function tools from the client; tools[0] has type 'web_search'"),
    ({"tools": [{"type": "function"}]}, "tools[0].function.name must be"),
    ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "function.name must be"),
    ({"tools": [{"type": "function", "function": {"name": "x", "parameters": "{}"}}]}, "tools[0].function.parameters must be a dict"),
    ({"tools": [WEATHER, WEATHER]}, "repeated: ['weather']"),
    ({"functions": [WEATHER["function"]]}, "send functions as tools=["),
    ({"functions": [WEATHER["function"]], "function_call": "auto"}, "send functions and function_call as tools=["),
])
def test_what_the_agent_cannot_honour_is_refused_with_a_reason(params, needle):
    with pytest.raises(ClientToolError) as error:
        client_tools("demo", params)
    assert needle in str(error.value)
