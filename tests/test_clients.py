"""The client libraries people point at the proxy, against the real proxy and the fake upstream:
the OpenAI Agents SDK (``openai-agents``) and LangChain's ``ChatOpenAI`` (``langchain-openai``),
with agent profiles as their model. Each test asserts the answer and the cost as that library
exposes it (docs/agent.md, "Where each library puts usage.cost").

The docs' snippets for both libraries run as written against the default config at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import openai
import pytest

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # before the SDK is imported: it would export traces

from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel, RunConfig, Runner,  # noqa: E402
                    function_tool, set_tracing_disabled)
from agents.exceptions import UserError  # noqa: E402
from agents.models.multi_provider import MultiProvider  # noqa: E402
from langchain_core.messages import HumanMessage  # noqa: E402
from openai.types.shared import Reasoning  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from tests.conftest import base_config  # noqa: E402
from tests.harness import REPO_ROOT, ProxyProcess, Reply, call, fake_model_entry  # noqa: E402

set_tracing_disabled(True)

MODEL = "cl-model"  # a priced model of the fake upstream
PRICE_IN, PRICE_OUT = 1e-6, 2e-6
TURN = 11 * PRICE_IN + 7 * PRICE_OUT  # one fake upstream turn: 11 prompt + 7 completion tokens
QUESTION = "6 times 7, and the weather in Paris?"
CODEX = "cl-codex"  # the codex-agent service's model on the fake upstream


@pytest.fixture(scope="module")
def clients_proxy(upstream):
    profiles = {"helper": {"model": MODEL, "tools": ["calculator"], "max_iterations": 4}}
    section = {"agent": {"default_model": "echo", "profiles": profiles}, "providers": {"codex_agent": {"enabled": True}}}
    config = base_config(upstream, section, models=[
        fake_model_entry(MODEL, upstream.base_url, MODEL, input_cost_per_token=PRICE_IN, output_cost_per_token=PRICE_OUT),
        {"model_name": "codex", "litellm_params": {"model": f"codex-agent/{CODEX}", "api_base": upstream.base_url}},
        {"model_name": "agent-helper", "litellm_params": {"model": "mini-agent/helper"}},
        {"model_name": "mini-agent/helper", "litellm_params": {"model": "mini-agent/helper"}},
    ])
    config["litellm_settings"]["custom_provider_map"].append(
        {"provider": "mini-agent", "custom_handler": "proxy_ext.providers.mini_agent.handler"})
    with ProxyProcess(config) as process:
        yield process


def _calculator_then_weather_then_answer(upstream) -> None:
    """The agent's model: one turn with its own calculator, one calling the client's weather tool,
    and (in the next run, after the client's result) the answer. Runs cost 2 turns, then 1."""
    upstream.script(MODEL, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]),
                    Reply(text="Checking the weather.", tool_calls=[call("weather", {"city": "Paris"}, "call_w1")]),
                    Reply(text="42, and sunny in Paris."))


def _weather_tool(calls: list[str]):
    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    return weather


# ---------------------------------------------------------------------------------- OpenAI Agents SDK


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_agents_sdk_function_tool_round_trip_with_a_profile_as_the_model(clients_proxy, upstream, api, streamed):
    _calculator_then_weather_then_answer(upstream)
    model_class = OpenAIChatCompletionsModel if api == "chat_completions" else OpenAIResponsesModel
    weather_calls: list[str] = []
    agent = Agent(name="helper", model=model_class(model="agent-helper", openai_client=clients_proxy.async_openai()),
                  tools=[_weather_tool(weather_calls)], model_settings=ModelSettings(include_usage=True, preserve_raw_usage=True))
    if streamed:
        result = Runner.run_streamed(agent, QUESTION)
        deltas = [e.data.delta async for e in result.stream_events()
                  if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"]
        assert "".join(deltas).endswith("42, and sunny in Paris.")
    else:
        result = await Runner.run(agent, QUESTION)
    assert result.final_output == "42, and sunny in Paris."
    assert weather_calls == ["Paris"]  # the SDK ran its own tool, handed back by the agent
    # Cost as the SDK exposes it: the raw usage of each model request = each agent run's cost.
    assert [r.raw_usage["cost"] for r in result.raw_responses] == [pytest.approx(2 * TURN), pytest.approx(TURN)]
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 33, 21)
    # The continued conversation reached the agent's model with the SDK's tool result.
    sent = upstream.requests_for(MODEL)[-1]["body"]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny in Paris"}


async def test_agents_sdk_function_tool_round_trip_with_a_plain_model(clients_proxy, upstream):
    upstream.script(MODEL, Reply(tool_calls=[call("weather", {"city": "Oslo"}, "call_o1")]), Reply(text="Sunny in Oslo."))
    weather_calls: list[str] = []
    agent = Agent(name="plain", model=OpenAIChatCompletionsModel(model=MODEL, openai_client=clients_proxy.async_openai()),
                  tools=[_weather_tool(weather_calls)], model_settings=ModelSettings(preserve_raw_usage=True))
    result = await Runner.run(agent, "weather in Oslo?")
    assert result.final_output == "Sunny in Oslo." and weather_calls == ["Oslo"]
    assert [r.raw_usage["cost"] for r in result.raw_responses] == [pytest.approx(TURN)] * 2


class Forecast(BaseModel):
    city: str
    degrees: int


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_agents_sdk_output_type_with_a_profile_as_the_model(clients_proxy, upstream, api):
    # output_type makes the SDK send a JSON schema; the agent's model gets it on every turn (the
    # calculator turn and the answer), so a real model answers in the shape the SDK parses.
    upstream.script(MODEL, Reply(tool_calls=[call("calculator", {"expression": "20+1"})]), Reply(text='{"city": "Oslo", "degrees": 21}'))
    before = len(upstream.requests_for(MODEL))
    model_class = OpenAIChatCompletionsModel if api == "chat_completions" else OpenAIResponsesModel
    agent = Agent(name="forecaster", model=model_class(model="agent-helper", openai_client=clients_proxy.async_openai()),
                  output_type=Forecast)
    result = await Runner.run(agent, "How warm is Oslo?")
    assert result.final_output == Forecast(city="Oslo", degrees=21)
    sent = [r["body"] for r in upstream.requests_for(MODEL)[before:]]
    assert len(sent) == 2
    assert all(b["response_format"]["json_schema"]["schema"]["required"] == ["city", "degrees"] for b in sent)


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_agents_sdk_reasoning_settings_are_accepted_by_a_profile(clients_proxy, upstream, api):
    # ModelSettings(reasoning=..., verbosity=...) (the SDK's settings for reasoning models) reach the
    # proxy as reasoning_effort / verbosity; an agent profile takes them as it takes temperature
    # (before: LiteLLM's 400 "mini-agent does not support parameters: ['reasoning_effort']").
    upstream.script(MODEL, Reply(text="thought about it"))
    model_class = OpenAIChatCompletionsModel if api == "chat_completions" else OpenAIResponsesModel
    settings = ModelSettings(reasoning=Reasoning(effort="low"), verbosity="low", temperature=0.2)
    agent = Agent(name="a", model=model_class(model="agent-helper", openai_client=clients_proxy.async_openai()), model_settings=settings)
    assert (await Runner.run(agent, "think")).final_output == "thought about it"
    assert "reasoning_effort" not in upstream.requests_for(MODEL)[-1]["body"]  # the profile's models keep their own settings


async def test_agents_sdk_model_names(clients_proxy, upstream):
    client = clients_proxy.async_openai()
    default_provider = MultiProvider(openai_client=client, openai_use_responses=False)
    upstream.script(MODEL, Reply(text="plain name"))
    result = await Runner.run(Agent(name="a", model="agent-helper"), "hi", run_config=RunConfig(model_provider=default_provider))
    assert result.final_output == "plain name"
    # The default provider reads "mini-agent/" as a provider prefix: why the docs use plain names.
    with pytest.raises(UserError, match="Unknown prefix: mini-agent"):
        await Runner.run(Agent(name="a", model="mini-agent/helper"), "hi", run_config=RunConfig(model_provider=default_provider))
    # The two ways around it that docs/agent.md shows.
    upstream.script(MODEL, Reply(text="prefixed name"))
    agent = Agent(name="a", model=OpenAIChatCompletionsModel(model="mini-agent/helper", openai_client=client))
    assert (await Runner.run(agent, "hi")).final_output == "prefixed name"
    passthrough = MultiProvider(openai_client=client, openai_use_responses=False, unknown_prefix_mode="model_id")
    result = await Runner.run(Agent(name="a", model="mini-agent/helper"), "hi", run_config=RunConfig(model_provider=passthrough))
    assert result.final_output == "prefixed name"


# -------------------------------------------------------------------------------- LangChain ChatOpenAI


def _chat(proxy: ProxyProcess, model: str = "agent-helper", **kwargs) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=f"{proxy.base_url}/v1", api_key=proxy.master_key, max_retries=0, **kwargs)


@pytest.mark.parametrize("model", ["agent-helper", "mini-agent/helper"])
def test_langchain_invoke_with_a_profile_as_the_model(clients_proxy, upstream, model):
    upstream.script(MODEL, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text="It is 42."))
    reply = _chat(clients_proxy, model).invoke("6 times 7?")
    assert reply.content == "It is 42."
    assert reply.usage_metadata["total_tokens"] == 36
    assert reply.response_metadata["token_usage"]["cost"] == pytest.approx(2 * TURN)


def test_langchain_stream(clients_proxy, upstream):
    upstream.script(MODEL, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text="It is 42."))
    chunks = list(_chat(clients_proxy, stream_usage=True).stream("6 times 7?"))
    assert len([c for c in chunks if c.content]) >= 3  # the answer streamed word by word
    full = sum(chunks[1:], chunks[0])
    assert full.content == "It is 42."
    assert full.usage_metadata["total_tokens"] == 36  # the run's tokens
    # What docs/agent.md says: LangChain streams keep the tokens but not usage.cost.
    assert "cost" not in json.dumps([c.response_metadata for c in chunks] + [c.usage_metadata for c in chunks])


def test_langchain_bind_tools_round_trip(clients_proxy, upstream):
    _calculator_then_weather_then_answer(upstream)
    weather_calls: list[str] = []

    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        weather_calls.append(city)
        return f"sunny in {city}"

    llm = _chat(clients_proxy).bind_tools([weather])
    messages = [HumanMessage(QUESTION)]
    reply = llm.invoke(messages)
    costs = [reply.response_metadata["token_usage"]["cost"]]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    assert [(c["name"], c["args"], c["id"]) for c in reply.tool_calls] == [("weather", {"city": "Paris"}, "call_w1")]
    while reply.tool_calls:
        messages += [reply, *(weather.invoke(c) for c in reply.tool_calls)]
        reply = llm.invoke(messages)
        costs.append(reply.response_metadata["token_usage"]["cost"])
    assert reply.content == "42, and sunny in Paris." and weather_calls == ["Paris"]
    assert costs == [pytest.approx(2 * TURN), pytest.approx(TURN)]


def test_langchain_with_structured_output(clients_proxy, upstream):
    upstream.script(MODEL, Reply(text='{"city": "Rome", "degrees": 25}'))
    assert _chat(clients_proxy).with_structured_output(Forecast).invoke("How warm is Rome?") == Forecast(city="Rome", degrees=25)
    assert upstream.requests_for(MODEL)[-1]["body"]["response_format"]["json_schema"]["name"] == "Forecast"


def test_langchain_reasoning_effort_is_accepted_by_a_profile(clients_proxy, upstream):
    upstream.script(MODEL, Reply(text="fine"))
    assert _chat(clients_proxy, reasoning_effort="low").invoke("hi").content == "fine"
    upstream.script(MODEL, Reply(text="fine too"))
    assert _chat(clients_proxy, use_responses_api=True, reasoning={"effort": "low"}).invoke("hi").text == "fine too"


def test_langchain_previous_response_id_is_refused_without_a_database(clients_proxy, upstream):
    # use_previous_response_id sends only the new turn: LiteLLM rebuilds the earlier ones from its
    # spend logs, and a proxy without a database has none (before: the agent answered the last
    # message alone, as if the conversation had just started).
    upstream.script(MODEL, Reply(text="Hi Ann."))
    llm = _chat(clients_proxy, use_responses_api=True, use_previous_response_id=True)
    first = llm.invoke([HumanMessage("I am Ann.")])
    assert first.text == "Hi Ann."
    with pytest.raises(openai.BadRequestError, match="previous_response_id cannot continue a conversation") as caught:
        llm.invoke([HumanMessage("I am Ann."), first, HumanMessage("Who am I?")])
    assert caught.value.status_code == 400


def test_langchain_responses_api_mode(clients_proxy, upstream):
    upstream.script(MODEL, Reply(tool_calls=[call("calculator", {"expression": "6*7"})]), Reply(text="It is 42."))
    reply = _chat(clients_proxy, use_responses_api=True).invoke("6 times 7?")
    assert reply.text == "It is 42."
    assert reply.usage_metadata["total_tokens"] == 36
    assert "cost" not in json.dumps(reply.response_metadata)  # tokens only in this mode (docs/agent.md)


# ------------------------------------------------------- the docs' snippets, as written, on the default config

DOC = (REPO_ROOT / "docs" / "agent.md").read_text()
SECTION = DOC.split("## Using the agent from client libraries", 1)[1].split("\n## ", 1)[0]
SNIPPETS = re.findall(r"```python\n(.*?)```", SECTION, re.S)


def _run_snippet(proxy: ProxyProcess, index: int) -> list[str]:
    script = SNIPPETS[index].replace("127.0.0.1:4000", f"127.0.0.1:{proxy.port}")
    env = {**os.environ, "LITELLM_MASTER_KEY": proxy.master_key}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_docs_show_three_client_snippets():
    assert len(SNIPPETS) == 3


def test_docs_agents_sdk_snippet(default_proxy):
    lines = _run_snippet(default_proxy, 0)
    assert lines[:3] == ["hello agent", "0.0", "hello stream"]
    assert int(lines[3]) > 0


def test_docs_agents_sdk_model_names_snippet(default_proxy):
    assert _run_snippet(default_proxy, 1) == ["hello model object", "hello provider"]


def test_docs_langchain_snippet(default_proxy):
    lines = _run_snippet(default_proxy, 2)
    assert lines[:4] == ["hello agent", "0.0", "hello tools", "one two"]
    assert int(lines[4]) > 0


# ---------------------------------------------------------------------------------------- codex-agent


def test_codex_agent_gets_reasoning_effort_and_verbosity(clients_proxy, upstream):
    # LiteLLM's list of fields for custom providers lacks these two (its 400 told the client to set
    # drop_params): the codex-agent service gets them, from chat completions and the Responses API.
    upstream.script(CODEX, Reply(text="thought"))
    client = clients_proxy.openai()
    reply = client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "fix it"}], reasoning_effort="high", verbosity="low")
    assert reply.choices[0].message.content == "thought"
    sent = upstream.requests_for(CODEX)[-1]["body"]
    assert (sent["reasoning_effort"], sent["verbosity"]) == ("high", "low") and "allowed_openai_params" not in sent
    assert client.responses.create(model="codex", input="fix it", reasoning={"effort": "medium"}).output_text == "thought"
    assert upstream.requests_for(CODEX)[-1]["body"]["reasoning_effort"] == "medium"


def test_codex_agent_gets_the_clients_user(clients_proxy, upstream):
    # LiteLLM leaves `user` out of a custom provider's call without a word: the service got no user.
    upstream.script(CODEX, Reply(text="done"))
    client = clients_proxy.openai()
    client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "fix it"}], user="end-user-7")
    assert upstream.requests_for(CODEX)[-1]["body"]["user"] == "end-user-7"
    client.chat.completions.create(model="codex", messages=[{"role": "user", "content": "fix it"}])
    assert "user" not in upstream.requests_for(CODEX)[-1]["body"]  # none sent, none made up
    client.responses.create(model="codex", input="fix it", user="end-user-8")
    assert upstream.requests_for(CODEX)[-1]["body"]["user"] == "end-user-8"
    assert client.chat.completions.create(model="agent-helper", messages=[{"role": "user", "content": "hi"}], user="u").choices[0].message.content
