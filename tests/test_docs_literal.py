"""Every code block of README.md and docs/ works as written, the way a reader uses it.

The reader's terminal (tests/support/doc_blocks.py) works in a copy of the project: the README's
``make run`` serves the default config (its ``.env`` is the one it generates), shell blocks run
through ``bash -c`` in a fresh environment, Python blocks as files through ``.venv/bin/python``
and JavaScript blocks through ``node``, in the shell the earlier blocks of their document set up
(``set -a; source .env; set +a``: ``.env`` has no ``export`` lines). The only rewrite is the port. YAML blocks must parse (tests/test_docs.py validates their ``proxy_ext:``
sections), JSON blocks must parse, ``text`` blocks are output and must not look like commands.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable

import pytest
import yaml

from tests.harness import REPO_ROOT, Reply
from tests.support.doc_blocks import Block, Result, Terminal, all_blocks


BLOCKS = all_blocks()
OPERATOR_DOCS = ("docs/operator-guide.md", "docs/troubleshooting.md", "docs/migrating-from-the-fork.md")
"""Their blocks run in tests/test_docs_literal_ops.py: a second module (its own reader's terminal)
that `make test`'s workers run beside this one."""
RUNNABLE = {"bash", "python", "js"}
LANGS = RUNNABLE | {"yaml", "json", "text"}
NEEDS = sorted({var for block in BLOCKS if block.kind == "needs" for var in block.args.split()})
ERROR_BODY = re.compile(r'"error"\s*:\s*\{|"detail"\s*:|Internal Server Error')
COMMAND_STARTS = ("make ", "curl ", ".venv/", "python", "litellm ", "export ", "set -a", "npm ", "node ", "pip ")


def lines(*expected: str) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        assert result.stdout.splitlines() == list(expected)
    return check


def contains(*fragments: str) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        for fragment in fragments:
            assert fragment in result.stdout, f"{fragment!r} not in the output"
    return check


def both(*checks: Callable[[Result], None]) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        for one in checks:
            one(result)
    return check


def lacks(*fragments: str) -> Callable[[Result], None]:
    def check(result: Result) -> None:
        for fragment in fragments:
            assert fragment not in result.stdout, f"{fragment!r} in the output"
    return check


def _same_as_documented_text(result: Result, doc: str, fragment: str) -> None:
    """The output is, line for line, the ``text`` block of ``doc`` that contains ``fragment``."""
    [shown] = [b for b in BLOCKS if b.doc == doc and b.lang == "text" and fragment in b.text]
    assert result.stdout.splitlines() == shown.text.splitlines(), f"the output differs from {shown.id}"


def _count(result: Result, fragment: str, times: int) -> None:
    assert result.stdout.count(fragment) == times, f"{fragment!r} should appear {times} times"


# What the blocks print, keyed by (document, a line of the block that no other block of the document
# has). Every runnable block also has to exit 0 without an error body, a traceback or "command not found".
EXPECT: dict[tuple[str, str], Callable[[Result], None]] = {
    ("README.md", "curl -s http://127.0.0.1:4000/ready"): contains(
        '{"ready":true', '"content":"hello"', '"final_answer":"hello agent"', '"text":"hello responses"'),
    ("README.md", 'print(client.responses.create(model="echo", input="hello responses").output_text)   # hello responses'): lines(
        "hello", "one two", "hello responses"),
    ("README.md", "make doctor   # check the config without starting the server (reads .env like make run)"): both(
        contains("ok: no problems found"), lacks("no master key")),
    ("README.md", ".venv/bin/proxy-ext doctor --config proxy_config.yaml"): contains("ok: no problems found"),
    ("README.md", "make smoke-live   # with no provider variables set, every flow is skipped, naming what it needs"): contains(
        "set OPENAI_API_KEY to run this live flow", "set CODEX_AGENT_API_BASE to run this live flow", "6 skipped"),
    ("docs/agent.md", "  -d '{\"input\": \"hello agent\"}'"): contains('"ok":true', '"final_answer":"hello agent"'),
    ("docs/agent.md", 'print(run["ok"], run["stopped_reason"], run["final_answer"])'): lines("True final_answer hello agent", "echo 0.0"),
    ("docs/agent.md", "curl -s http://127.0.0.1:4000/agent/runs/$RUN -H \"$AUTH\"; echo"): contains(
        '"status":"completed"', '"final_answer":"hello later"', "event: run_completed", "id: 2"),
    ("docs/agent.md", 'print(status["status"], status["envelope"]["final_answer"])'): lines(
        "awaiting_approval ['calculator']", "completed 42"),
    ("docs/agent.md", 'reply = client.chat.completions.create(model="agent-demo",'): contains(
        "What is 17 * 23?\n", "'stopped_reason': 'final_answer'"),
    ("docs/cost.md", "raw = client.chat.completions.with_raw_response.create(model=\"echo\", messages=HI)"): lines(
        "0.0 {'input_cost': 0.0, 'output_cost': 0.0}", "header x-litellm-response-cost: None",
        "header x-litellm-response-cost-original: 0.0", "stream 0.0", "responses 0.0"),
    ("docs/cost.md", "from proxy_ext import assemble_stream_text, augment_json_with_cost, extract_content"): lines(
        "hi", "one two", "{'usage': {'total_tokens': 7, 'cost': 0.00042, 'cost_details': {'input_cost': 0.0003, 'output_cost': 0.00012}}}"),
    ("docs/cost.md", 'import OpenAI from "openai";'): lines("0 { input_cost: 0, output_cost: 0 } null", "0"),
    ("docs/troubleshooting.md", '  -H "Authorization: Bearer team-a-key" -H \'Content-Type: application/json\' \\'): contains(
        '"ok":true', '"final_answer":"hello agent"', "\n403"),
    ("docs/operator-guide.md", "for scrape in 1 2; do"): lines(
        'proxy_ext_agent_runs_total{stopped_reason="final_answer"} 6.0', 'proxy_ext_agent_runs_total{stopped_reason="final_answer"} 6.0'),
    ("docs/migrating-from-the-fork.md", "curl -s http://127.0.0.1:4002/v1/chat/completions \\"): lambda result: (
        _count(result, '"content":"answered by the codex-agent service"', 2)),
    ("docs/migrating-from-the-fork.md", "curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:4002/agent/run \\"): lines("401"),
    ("docs/migrating-from-the-fork.md", ".venv/bin/proxy-ext doctor --config fork_config.yaml | grep -E 'codex-agent provider|warning|problem|ok:'"): lines(
        "  codex-agent provider   on (mode=http)", "ok: no problems found"),
    ("docs/migrating-from-the-fork.md", "export LITELLM_ENABLE_CODEX_AGENT=enabled CODEX_AGENT_API_BASE=http://127.0.0.1:8800/v1"): lambda result: (
        _same_as_documented_text(result, "docs/migrating-from-the-fork.md", "warning: LITELLM_ENABLE_CODEX_AGENT='enabled'")),
}


def _expectation(block: Block) -> Callable[[Result], None] | None:
    found = [check for (doc, line), check in EXPECT.items() if doc == block.doc and line in block.text.splitlines()]
    return found[0] if found else None


@pytest.fixture(scope="module")
def terminal(upstream, tmp_path_factory):
    reader = Terminal.create(tmp_path_factory.mktemp("docs-literal"), upstream.port, NEEDS)
    upstream.script("codex-agent-1", Reply(text="answered by the codex-agent service"))
    try:
        yield reader
    finally:
        reader.stop()


def test_every_expectation_names_one_block():
    for doc, line in EXPECT:
        matches = [b.id for b in BLOCKS if b.doc == doc and line in b.text.splitlines()]
        assert len(matches) == 1, f"{doc}: {len(matches)} blocks have the line {line!r}: {matches}"


def test_every_block_has_a_known_language():
    untagged = [b.id for b in BLOCKS if b.lang not in LANGS]
    assert not untagged, f"tag these fences with one of {sorted(LANGS)}: {untagged}"


def test_no_doc_runs_proxy_ext_as_if_it_were_on_path():
    for path in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("**/*.md")]:
        text = path.read_text()
        assert "`proxy-ext doctor" not in text, f"{path.name}: write `.venv/bin/proxy-ext doctor …` or `make doctor`"


def _check(block: Block, result: Result) -> None:
    where = f"{block.id}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode == 0, where
    assert "command not found" not in result.stderr and "Traceback" not in result.stderr, where
    if block.lang == "bash":
        assert not ERROR_BODY.search(result.stdout), where
    check = _expectation(block)
    if check is not None:
        try:
            check(result)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{where}") from None


def blocks_of(docs: tuple[str, ...], inside: bool) -> list[Block]:
    """The blocks of ``docs`` (``inside``) or of every other document."""
    return [b for b in BLOCKS if (b.doc in docs) == inside]


@pytest.mark.parametrize("block", blocks_of(OPERATOR_DOCS, inside=False), ids=lambda b: b.id)
def test_block_works_as_written(block: Block, terminal: Terminal):
    run_block(block, terminal)


def run_block(block: Block, terminal: Terminal) -> None:
    """Run (or check) one block as its reader would, after what the reader did before it."""
    if block.kind == "skip":
        pytest.skip(block.args)
    missing = [var for var in block.args.split() if block.kind == "needs" and not terminal.env.get(var)]
    if block.kind == "needs":
        for var in block.args.split():
            assert var in block.prose, f"{block.id}: the text before the block must say it needs {var}"
        if missing:
            pytest.skip(f"needs {' '.join(missing)}")
    if block.lang == "yaml":
        assert isinstance(yaml.safe_load(block.text), dict), f"{block.id}: a YAML block should be a mapping"
    elif block.lang == "json":
        json.loads(block.text)
    elif block.lang == "text":
        commands = [line for line in block.text.splitlines() if line.lstrip().startswith(COMMAND_STARTS)]
        assert not commands, f"{block.id}: a command in a text block — make it a bash block: {commands}"
    if block.kind != "file" and block.lang not in RUNNABLE:
        return
    terminal.prepare(block, BLOCKS)
    if block.kind == "file":
        path = terminal.write_file(block)
        terminal.done.add(block.id)
        if block.lang == "python":
            compile(path.read_text(), str(path), "exec")
        return
    if block.kind == "server":
        if block.id not in terminal.done:
            terminal.done.add(block.id)
            terminal.start(block)
        return
    if block.lang == "js" and (shutil.which("node") is None or not (REPO_ROOT / "tests" / "node" / "node_modules" / "openai").exists()):
        pytest.skip("node or the openai npm package is missing: run `make node-deps`")
    _check(block, terminal.run(block, BLOCKS))
