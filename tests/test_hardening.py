"""What clients send that they should not: each gets a clear 4xx, and none can cost the proxy memory
or a worker. Against the real proxy subprocess, with the request guard on."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.conftest import base_config
from tests.harness import ProxyProcess, Reply

GUARD_LIMIT = 1_000_000
BODY_TIMEOUT_S = 2.0
BODY_DEADLINE_S = 3.0
MAX_JSON_ELEMENTS = 20_000


@pytest.fixture(scope="module")
def guarded(upstream, tmp_path_factory):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    tool_host = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    config = base_config(upstream, {
        "agent": {"default_model": "echo", "limits": {"max_request_bytes": 50_000}},
        "guard": {"max_body_bytes": GUARD_LIMIT, "body_timeout_s": BODY_TIMEOUT_S, "body_deadline_s": BODY_DEADLINE_S,
                  "max_json_elements": MAX_JSON_ELEMENTS,
                  "route_max_body_bytes": {"/v1/files": 2_000_000}},
        "metrics": {"require_auth": False},
        "tools": {"http": {"base_url": tool_host}},
        "providers": {"codex_agent": {"enabled": True, "cli": {"binary": str(tmp_path_factory.mktemp("nocodex") / "codex")}}},
    }, models=[{"model_name": "codex-local", "litellm_params": {"model": "codex-agent/local", "codex_agent": {"mode": "cli"}}}])
    with ProxyProcess(config) as process:
        yield process


def _post(proxy, path: str, content: bytes | str, content_type: str | None = "application/json", key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or proxy.master_key}"}
    if content_type:
        headers["Content-Type"] = content_type
    return httpx.post(f"{proxy.base_url}{path}", content=content, headers=headers, timeout=30)


def _error(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["code"] == str(status)
    assert needle in error["message"], error["message"]


# ----------------------------------------------------------------------------------- bodies

@pytest.mark.parametrize("body, status, needle", [
    ("null", 400, "must be a JSON object"),
    ("[]", 400, "must be a JSON object"),
    ('"x"', 400, "must be a JSON object"),
    ("5", 400, "must be a JSON object"),
    ("", 400, "empty"),
    ("{nope", 400, "not valid JSON"),
    ('{"messages": [{"role": {}}]}', 422, "role must be one of"),
    ('{"messages": [{"role": []}]}', 422, "role must be one of"),
    ('{"messages": [{"role": 5, "content": "x"}]}', 422, "role must be one of"),
    ('{"messages": [{"role": "user"}]}', 422, "content"),
    ('{"messages": [{"role": "tool", "content": "x"}]}', 422, "tool_call_id"),
    ('{"messages": [{"role": "assistant", "tool_calls": [{"id": "c1"}]}]}', 422, "function"),
    ('{"input": "x", "max_iterations": true}', 422, "max_iterations"),
    ('{"input": "x", "max_iterations": 2.5}', 422, "max_iterations"),
    ('{"input": "x", "stream": "yes"}', 422, "stream"),
    ('{"input": "x", "model": ""}', 422, "model"),
    ('{"input": ""}', 422, "input"),
    ('{"input": "x", "tools": [""]}', 422, "tools"),
    ('{"input": "x", "tools": ["nope"]}', 400, "unknown tool"),
    ('{"input": "x", "budget": {"timeout_s": true}}', 422, "timeout_s"),
    ('{"input": "x", "metadata": []}', 422, "metadata"),
    ("[" * 1000 + "]" * 1000, 400, "nested deeper"),
    ('{"input": "x", "metadata": ' + '{"a": ' * 80 + "1" + "}" * 80 + "}", 400, "nested deeper than 64"),
    # Python's json takes these; the run then failed at its model calls (after their retries, ~9 s): 200 with ok false.
    ('{"messages": [{"role": "user", "content": "x", "name": NaN}]}', 400, "holds NaN"),
    ('{"input": "x", "metadata": {"a": -Infinity}}', 400, "holds -Infinity"),
    ('{"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "w": 1e999}]}]}', 400, "holds 1e999"),
])
def test_bad_agent_run_bodies_get_a_clear_4xx(guarded, body, status, needle):
    _error(_post(guarded, "/agent/run", body), status, needle)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"])
def test_non_json_bodies_get_415(guarded, content_type):
    _error(_post(guarded, "/agent/run", "input=hello", content_type), 415, "application/json")


def test_a_json_body_without_content_type_is_accepted(guarded):
    response = _post(guarded, "/agent/run", json.dumps({"input": "plain"}), content_type=None)
    assert response.status_code == 200 and response.json()["final_answer"] == "plain"


@pytest.mark.parametrize("body", ["null", "[]", '"x"', "7"])
def test_stock_json_routes_refuse_non_object_bodies_with_400(guarded, body):
    _error(_post(guarded, "/v1/chat/completions", body), 400, "JSON object")


def test_a_valid_stock_request_passes_the_guard(guarded):
    reply = guarded.openai().chat.completions.create(model="echo", messages=[{"role": "user", "content": "through"}])
    assert reply.choices[0].message.content == "through"


# ----------------------------------------------------------------------------------- memory and time

def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))


def _raw_request(proxy, head: str, body_chunks, read_timeout: float = 30) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=read_timeout) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy answered and closed before the client finished sending
        answer = b""
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    return answer


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/agent/run"])
def test_a_300_mb_body_is_refused_without_being_read(guarded, path):
    pid = guarded.process.pid
    before = _peak_rss_kb(pid)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-bogus\r\nContent-Type: application/json\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\n\r\n")
    megabyte = b"{" + b" " * (1024 * 1024 - 1)
    answer = _raw_request(guarded, head, (megabyte for _ in range(300)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert (_peak_rss_kb(pid) - before) < 50 * 1024, "the worker's peak RSS grew by 50 MB or more"


def test_a_chunked_body_is_cut_off_at_the_limit(guarded):
    pid = guarded.process.pid
    before = _peak_rss_kb(pid)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.master_key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"{" + b" " * (256 * 1024 - 1)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw_request(guarded, head, (chunk for _ in range(400)))  # 100 MB, no Content-Length
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert (_peak_rss_kb(pid) - before) < 50 * 1024


def test_route_limits_override_the_default(guarded):
    head = (f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.master_key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {3_000_000}\r\n\r\n")
    assert _raw_request(guarded, head, []).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/agent/run"])
def test_a_body_that_never_comes_is_answered_within_the_read_timeout(guarded, path):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.master_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 20000\r\n\r\n")
    started = time.monotonic()
    answer = _raw_request(guarded, head, [b'{"input": '], read_timeout=BODY_TIMEOUT_S + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/agent/run"])
def test_a_body_of_too_many_json_elements_is_refused_before_it_is_parsed(guarded, path):
    # 32 MiB of "[]," parse into 11 million lists: 2.6 GB that LiteLLM never gave back.
    bomb = b'{"model": "echo", "input": "x", "metadata": {"x": [' + b"[]," * 15_000 + b'[]]}}'
    response = httpx.post(f"{guarded.base_url}{path}", content=bomb, timeout=30,
                          headers={**guarded.headers, "content-type": "application/json"})
    assert response.status_code == 413 and "max_json_elements" in response.json()["error"]["message"], response.text[:300]
    fine = {"model": "echo", "messages": [{"role": "user", "content": "x"}], "metadata": {"x": [[]] * 5000}}
    assert httpx.post(f"{guarded.base_url}/v1/chat/completions", json=fine, headers=guarded.headers, timeout=30).status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/agent/run"])
def test_a_body_trickling_in_is_answered_at_the_body_deadline(guarded, path):
    # Slowloris: a byte a second never trips body_timeout_s; the whole body has a deadline too.
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.master_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n")

    def trickle():
        for _ in range(int(BODY_DEADLINE_S * 2) + 3):  # half a second apart, until past the deadline
            yield b" "
            time.sleep(0.5)

    started = time.monotonic()
    answer = _raw_request(guarded, head, trickle(), read_timeout=BODY_DEADLINE_S + 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]  # bytes every 0.5 s: never the 2 s silence
    assert time.monotonic() - started < BODY_DEADLINE_S * 2 + 3


# ----------------------------------------------------------------------------------- auth

@pytest.mark.parametrize("method, path", [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/agent/run"), ("GET", "/metrics")])
@pytest.mark.parametrize("key", [None, "sk-wrong-key", "not-even-sk"], ids=["no-key", "wrong-key", "malformed-key"])
def test_no_or_wrong_key_is_401_with_an_openai_error_body(proxy, method, path, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]} if path != "/agent/run" else {"input": "x"}
    response = httpx.request(method, f"{proxy.base_url}{path}", headers=headers, json=body if method == "POST" else None, timeout=30)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "401" and error["message"] and "prisma" not in error["message"] and "db" not in error["message"].lower()


def test_metrics_require_auth_false_opens_the_scrape(guarded):
    response = httpx.get(f"{guarded.base_url}/metrics", timeout=10)
    assert response.status_code == 200 and "proxy_ext_agent_runs_in_progress" in response.text


# ----------------------------------------------------------------------------------- readiness

def test_a_missing_optional_capability_is_degraded_not_unready(guarded):
    response = httpx.get(f"{guarded.base_url}/ready", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True and body["status"] == "degraded"
    assert set(body["failing"]) == {"codex_cli", "tool_host"}
    assert body["checks"]["codex_cli"] == {"ok": False, "reason": "codex binary not found"}
    assert body["checks"]["router"] == {"ok": True}


def test_readiness_per_capability(guarded):
    codex = httpx.get(f"{guarded.base_url}/ready", params={"capability": "codex_cli"}, timeout=10)
    assert codex.status_code == 503 and codex.json() == {"ready": False, "capability": "codex_cli", "check": {"ok": False, "reason": "codex binary not found"}}
    assert httpx.get(f"{guarded.base_url}/ready", params={"capability": "router"}, timeout=10).status_code == 200
    _error(httpx.get(f"{guarded.base_url}/ready", params={"capability": "nope"}, timeout=10), 404, "no readiness check")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "PATCH"])
def test_other_methods_on_agent_run_get_405(guarded, method):
    response = httpx.request(method, f"{guarded.base_url}/agent/run", headers=guarded.headers, timeout=10)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    if method != "HEAD":
        assert response.json()["error"]["code"] == "405"


def test_cors_preflight_on_agent_run_reaches_the_proxy(guarded):
    response = httpx.options(f"{guarded.base_url}/agent/run", timeout=10, headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200 and response.headers.get("access-control-allow-methods")


# ------------------------------------------------------------------ requests to the extension's models

@pytest.mark.parametrize("path, body, expected", [
    ("/v1/embeddings", {"model": "echo", "input": "x"}, "answers /v1/chat/completions and /v1/responses only"),
    ("/v1/moderations", {"model": "codex-local", "input": "x"}, "answers /v1/chat/completions and /v1/responses only"),
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream must be true or false"),
    ("/v1/chat/completions", {"model": "echo", "messages": ["x"]}, "messages[0] must be an object with a string role"),
    # LiteLLM's own check of user content parts raised a bare Exception: a 500, retried twice, with a traceback.
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": [{"text": "no type"}]}]},
     "messages[0].content[0].type must be one of"),
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string"),
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "x"}], "timeout": "x"}, "timeout must be a positive number"),
    ("/v1/responses", {"model": "echo", "input": [{"role": "user", "content": 5}]}, "input[0].content must be a string"),
    ("/v1/responses", {"model": "echo", "input": "x", "tools": [{"type": "web_search_preview"}]}, "function tools only"),
    ("/v1/responses", {"model": "echo", "input": "x", "stream": 1}, "stream must be true or false"),
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "x", "name": float("nan")}]}, "holds NaN"),
    # LiteLLM: "Unsupported response_format type - x", "'int' object is not iterable", "unhashable type: 'dict'" (500s, retried)
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "x"}], "response_format": "x"}, "response_format must be an object"),
    ("/v1/chat/completions", {"model": "codex-local", "messages": [{"role": "user", "content": "x"}], "response_format": []}, "response_format must be an object"),
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "assistant", "tool_calls": 5}, {"role": "user", "content": "x"}]},
     "messages[0].tool_calls must be a list"),
    ("/v1/responses", {"model": "echo", "input": [{"type": "function_call_output", "call_id": {"a": 1}, "output": "x"}]}, "input[0].call_id must be a string"),
    # Asked for and silently not given (a 200 without logprobs or audio):
    ("/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "x"}], "logprobs": True}, "no token log probabilities"),
    ("/v1/chat/completions", {"model": "codex-local", "messages": [{"role": "user", "content": "x"}], "modalities": ["audio"]}, "text only"),
])
def test_what_the_extensions_models_cannot_serve_is_a_400_before_litellm(guarded, path, body, expected):
    # LiteLLM answered these with 500s ("Not implemented yet!", a Python dict printed as SSE, a
    # traceback) or, for moderations, called the model's api_base and put the model in cooldown.
    response = _post(guarded, path, json.dumps(body))  # json.dumps, not httpx: it writes NaN as the client would
    assert response.status_code == 400 and expected in response.json()["error"]["message"], response.text
    ok = httpx.post(f"{guarded.base_url}/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "still up"}]},
                    headers=guarded.headers, timeout=30)
    assert ok.status_code == 200 and "still up" in ok.text


@pytest.mark.parametrize("header, value", [("x-litellm-timeout", "abc"), ("x-litellm-timeout", "nan"), ("x-litellm-stream-timeout", "inf"),
                                           ("x-litellm-num-retries", "abc"), ("x-litellm-num-retries", "1e9")])
@pytest.mark.parametrize("model", ["echo", "fake/hardening-headers"])
def test_litellm_control_headers_that_are_not_numbers_get_a_400(guarded, header, value, model):
    # LiteLLM converts them with a bare float() / int(): a 500 on any model.
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers={**guarded.headers, header: value}, timeout=30)
    _error(response, 400, f"header {header} must be a")
    fine = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers={**guarded.headers, header: "5"}, timeout=30)
    assert fine.status_code == 200, fine.text


@pytest.mark.parametrize("extra", [{"base_url": "http://127.0.0.1:9"}, {"api_base": "http://127.0.0.1:9"}, {"fallbacks": ["http://127.0.0.1:9"]}])
@pytest.mark.parametrize("model", ["echo", "fake/hardening-banned"])
def test_a_body_param_litellm_rejects_is_a_400_not_a_bare_500(guarded, extra, model):
    # LiteLLM's body checks raise ValueError("Rejected Request: ..."); without a database its error
    # classifier then fails importing prisma: a plain-text 500 "Internal Server Error".
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}
    _error(httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers=guarded.headers, timeout=30), 400, "Rejected Request")


@pytest.mark.parametrize("raw, expected", [
    ('{"model": "\\u0065cho", "messages": [{"role": "user", "content": [{"type": "zz"}]}]}', "messages[0].content[0].type must be one of"),
    ('{"mod\\u0065l": "ech\\u006f", "messages": [{"role": {}}]}', "messages[0] must be an object with a string role"),
    ('{"model": "codex\\u002dlocal", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream must be true or false"),
    ('{"model": "\\u0065cho", "messages": [{"role": "user", "content": "x", "name": NaN}]}', "holds NaN"),
], ids=["escaped-name", "escaped-key", "escaped-dash", "nan-with-escape"])
def test_a_model_name_written_with_json_escapes_is_checked_too(guarded, raw, expected):
    # "\u0065cho" is "echo": the guard looked for the name's bytes only, so these went to LiteLLM
    # unchecked (the first a 500 retried twice, an agent model's prompt past the 1 MiB run limit).
    _error(_post(guarded, "/v1/chat/completions", raw), 400, expected)


def test_escapes_in_a_request_to_another_model_are_left_to_litellm(guarded):
    raw = '{"model": "fake/hardening-\\u0065scaped", "messages": [{"role": "user", "content": "caf\\u00e9 \\/ echo"}], "stream": "yes"}'
    assert "stream must be true or false" not in _post(guarded, "/v1/chat/completions", raw).text


@pytest.mark.parametrize("where", ["top", "metadata"])
@pytest.mark.parametrize("model", ["echo", "fake/hardening-guardrails"])
def test_guardrail_names_that_cannot_be_a_header_get_a_400(guarded, model, where):
    # LiteLLM echoes them in x-litellm-applied-guardrails: "€" was a plain-text 500 (any model), a
    # line break a connection closed with no answer at all.
    for name in ("x\u20ac", "a\r\nx-injected: 1"):
        body = {"model": model, "messages": [{"role": "user", "content": "x"}],
                **({"guardrails": [name]} if where == "top" else {"metadata": {"guardrails": [name]}})}
        _error(httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers=guarded.headers, timeout=30), 400,
               "guardrail names must be printable Latin-1 text")
    fine = {"model": model, "messages": [{"role": "user", "content": "x"}], "guardrails": ["caf\u00e9"]}
    response = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=fine, headers=guarded.headers, timeout=30)
    assert response.status_code == 200, response.text


def test_requests_to_other_models_are_left_to_litellm(guarded):
    body = {"model": "fake/hardening-stock", "messages": [{"role": "user", "content": "the echo model"}], "stream": "yes"}
    response = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers=guarded.headers, timeout=30)
    assert "stream must be true or false" not in response.text


@pytest.mark.parametrize("headers, extra, needle", [
    ({"x-litellm-num-retries": "11"}, {}, "header x-litellm-num-retries asks for 11 retries; this proxy allows 0 to 10"),
    ({"x-litellm-num-retries": "-1"}, {}, "asks for -1 retries"),
    ({}, {"num_retries": 100_000}, "num_retries asks for 100000 retries; this proxy allows 0 to 10 (proxy_ext.guard.max_client_retries)"),
    ({}, {"max_retries": 1_000_000}, "max_retries asks for 1000000 retries"),
    ({}, {"num_retries": "3"}, "num_retries must be a whole number of retries"),
], ids=["header", "negative-header", "num_retries", "max_retries", "string"])
@pytest.mark.parametrize("model", ["echo", "fake/hardening-retries"])
def test_retries_a_client_asks_for_are_capped(guarded, upstream, headers, extra, needle, model):
    # LiteLLM retried a failing call as often as asked, 8 s apart, and went on after the client left:
    # 20 abandoned requests asking for 100 000 retries called the upstream 3 times a second for days.
    upstream.script("hardening-retries", Reply(text="fine"))
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}
    _error(httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers={**guarded.headers, **headers}, timeout=30), 400, needle)
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "num_retries": 2, "max_retries": 0}
    fine = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers={**guarded.headers, "x-litellm-num-retries": "10"}, timeout=30)
    assert fine.status_code == 200, fine.text


def test_a_retry_field_split_across_chunks_is_still_seen(guarded):
    body = b'{"model": "echo", "messages": [{"role": "user", "content": "x"}], "num_re'
    chunks = [f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body, b'tries": 500}')] + [b"0\r\n\r\n"]
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.master_key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = _raw_request(guarded, head, chunks)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]


@pytest.mark.parametrize("value, needle", [("1000", "asks for 1000 retries"), ("abc", "must be a whole number")])
def test_an_agent_runs_retry_header_is_checked_too(guarded, value, needle):
    # The run's model calls carry the caller's headers, x-litellm-num-retries included.
    response = httpx.post(f"{guarded.base_url}/agent/run", json={"input": "x"},
                          headers={**guarded.headers, "x-litellm-num-retries": value}, timeout=30)
    _error(response, 400, needle)


@pytest.mark.parametrize("extra", [{"timeout": "x"}, {"timeout": "nan"}, {"timeout": [1]}, {"timeout": -1}, {"stream": True, "stream_timeout": "x"}])
def test_a_stock_models_timeout_that_is_no_number_is_a_400(guarded, upstream, extra):
    # LiteLLM's float() deep in the call: a 500 after 4 s of retries (a 408 after 3 upstream calls for -1).
    upstream.script("hardening-timeout", Reply(text="fine"))
    before = len(upstream.requests_for("hardening-timeout"))
    body = {"model": "fake/hardening-timeout", "messages": [{"role": "user", "content": "x"}], **extra}
    _error(httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers=guarded.headers, timeout=30), 400,
           "must be a positive number of seconds")
    assert len(upstream.requests_for("hardening-timeout")) == before
    body.update({key: "30" for key in extra if key != "stream"})
    fine = httpx.post(f"{guarded.base_url}/v1/chat/completions", json=body, headers=guarded.headers, timeout=30)
    assert fine.status_code == 200, fine.text


def test_a_stored_response_of_the_extensions_models_is_a_404_not_a_500(guarded):
    # LiteLLM: 500 "GET responses is not supported for echo" (mini-agent, codex-agent alike).
    import openai

    client = guarded.openai()
    response_id = client.responses.create(model="echo", input="hi").id
    with pytest.raises(openai.NotFoundError, match="does not store responses"):
        client.responses.retrieve(response_id)
    for method, path in [("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel")]:
        answer = httpx.request(method, f"{guarded.base_url}/v1/responses/{response_id}{path}", headers=guarded.headers, timeout=30)
        _error(answer, 404, "which does not store responses")
        wrong = httpx.request(method, f"{guarded.base_url}/v1/responses/{response_id}{path}", headers={"Authorization": "Bearer sk-wrong"},
                              timeout=30)
        assert wrong.status_code == 401, wrong.text  # the proxy's auth still answers first
