"""schemathesis over every extension route, against the real proxy: no input makes it answer 5xx.

The schema is the proxy's own ``/openapi.json`` (the extension publishes its request and response
schemas there), cut down to the extension's routes. Cases are generated from a fixed seed and
bounded so the module takes about a minute; valid (positive) and invalid (negative) bodies alike.
"""

from __future__ import annotations

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.generation.modes import GenerationMode

from proxy_ext.credentials import CREDENTIAL_HEADERS

EXTENSION_OPERATIONS = [("/agent/run", "POST"), ("/ready", "GET"), ("/agent/runs", "GET"), ("/agent/runs/{run_id}", "GET"),
                        ("/agent/runs/{run_id}/events", "GET"), ("/agent/runs/{run_id}/cancel", "POST"),
                        ("/agent/runs/{run_id}/approvals", "POST")]
EXAMPLES = {("/agent/run", GenerationMode.POSITIVE): 60, ("/agent/run", GenerationMode.NEGATIVE): 110,
            ("/ready", GenerationMode.POSITIVE): 40, ("/ready", GenerationMode.NEGATIVE): 60,
            **{(path, mode): 12 for path, _ in EXTENSION_OPERATIONS[2:] for mode in GenerationMode}}


@pytest.fixture(scope="module")
def extension_schema(proxy):
    document = httpx.get(f"{proxy.base_url}/openapi.json", timeout=60).json()
    wanted = {path for path, _ in EXTENSION_OPERATIONS}
    document["paths"] = {path: item for path, item in document["paths"].items() if path in wanted}
    assert set(document["paths"]) == wanted, "an extension route is missing from /openapi.json"
    return schemathesis.openapi.from_dict(document)


def test_agent_run_publishes_request_and_response_schemas(extension_schema, proxy):
    document = httpx.get(f"{proxy.base_url}/openapi.json", timeout=60).json()
    operation = document["paths"]["/agent/run"]["post"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/ProxyExtAgentRunRequest"}
    components = document["components"]["schemas"]
    assert {"messages", "input", "model", "stream", "budget"} <= set(components["ProxyExtAgentRunRequest"]["properties"])
    envelope = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(components[envelope]["properties"]) == {"ok", "final_answer", "stopped_reason", "messages", "metrics"}
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("ProxyExtError")
    # Every status the routes answer is published (schemathesis' status_code_conformance found 202 and 413 missing).
    assert {"200", "202", "400", "401", "408", "413", "415", "422", "429", "501", "503"} <= set(operation["responses"])
    assert {"400", "404", "408", "409", "413", "415", "422", "503"} <= set(document["paths"]["/agent/runs/{run_id}/approvals"]["post"]["responses"])
    # The events stream is SSE: schemathesis' content_type_conformance found it published as application/json.
    events = document["paths"]["/agent/runs/{run_id}/events"]["get"]
    assert list(events["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {p["name"] for p in events["parameters"]} == {"run_id", "Last-Event-ID", "after"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("path, method", EXTENSION_OPERATIONS, ids=[p for p, _ in EXTENSION_OPERATIONS])
def test_no_input_gets_a_5xx(extension_schema, proxy, path, method, mode):
    operation = extension_schema[path][method]
    failures: list[str] = []
    statuses: set[int] = set()
    with requests.Session() as session:

        @seed(20261201)
        @settings(max_examples=EXAMPLES[path, mode], deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            if mode == GenerationMode.POSITIVE and path == "/agent/run":  # valid runs use the proxy's key, not a generated one
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
            response = case.call(base_url=proxy.base_url, session=session, headers=proxy.headers, timeout=30)
            statuses.add(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {case.body!r:.300}: {response.text[:300]}")
            elif response.status_code >= 400:
                assert "error" in response.json(), response.text  # every refusal is an OpenAI-style error body

        check()
    assert not failures, "\n".join(failures[:10])
    # A generated run id never names a run: those routes answer 404 (never 5xx) to valid input too.
    assert any(400 <= s < 500 for s in statuses) and (200 in statuses or mode == GenerationMode.NEGATIVE or "{run_id}" in path), statuses
