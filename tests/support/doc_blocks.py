"""The code blocks of README.md and docs/, and a "reader's terminal" that runs them as written.

A block runs literally: shell blocks through ``bash -c`` in a fresh environment (a system PATH,
HOME, LANG, and ``LITELLM_LOCAL_MODEL_COST_MAP=True`` for this offline host, as
docs/troubleshooting.md tells), in a copy of the project where the README's ``make run`` has
written ``.env``; Python blocks as files run by ``.venv/bin/python`` and JavaScript blocks by ``node``,
in the reader's shell: after the environment lines (``set -a``, ``source``, ``export``) of the
document's earlier shell blocks, and nothing else.
The one rewrite is the port: a documented port (4000, 4001, …) becomes a free one, in URLs and
``--port N``, and servers without ``--port`` get it through ``PORT`` (``make run`` and
``litellm`` both read it). Port 8800 is the documented codex-agent service: the fake upstream.

An HTML comment right before a fence says how a block is used (``<!-- doctest: KIND ARGS -->``):

- ``server`` — a long-running command (a proxy, a tool host): started in the background, it must
  answer HTTP on its port; it runs until the last block of its document has run.
- ``file NAME`` — the content of a file the following blocks use; written to ``NAME``.
- ``needs VAR …`` — runs only when every VAR is set (and the text before the block says so).
- ``skip REASON`` — never run here; the reason is shown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness import REPO_ROOT, free_port

__all__ = ["Block", "Terminal", "all_blocks", "shell_state"]

MACHINE_ENV = {"SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT",
               "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "NPM_CONFIG_REGISTRY", "npm_config_registry"}
MAIN_PORT = 4000
SERVICE_PORT = 8800
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\s*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*doctest:\s*([\w-]+)\s*(.*?)\s*-->\s*$")
IGNORE = shutil.ignore_patterns(".git", ".env", ".venv", ".tools", "node_modules", "__pycache__", ".pytest_cache",
                                ".hypothesis", "traces")


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    doc: str
    """Path relative to the repository root."""
    index: int
    line: int
    lang: str
    text: str
    kind: str | None
    """The marker's kind (``server``, ``file``, ``needs``, ``skip``) or None."""
    args: str
    prose: str
    """The text between the previous block and this one."""

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


def _documents() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("**/*.md"))]


def all_blocks() -> list[Block]:
    blocks = []
    for path in _documents():
        text = path.read_text()
        previous_end = 0
        for index, match in enumerate(FENCE.finditer(text)):
            before = text[previous_end:match.start()]
            lines = before.rstrip("\n").splitlines()
            marker = MARKER.match(lines[-1].strip()) if lines else None
            blocks.append(Block(
                doc=str(path.relative_to(REPO_ROOT)), index=index, line=text.count("\n", 0, match.start()) + 1,
                lang=match.group(1), text=match.group(2), kind=marker.group(1) if marker else None,
                args=marker.group(2) if marker else "", prose=before,
            ))
            previous_end = match.end()
    return blocks


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Server:
    block: Block
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Terminal:
    """A reader working through the docs in a copy of the project."""

    workdir: Path
    service_port: int
    env: dict[str, str] = field(default_factory=dict)
    servers: dict[str, list[Server]] = field(default_factory=dict)
    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, root: Path, service_port: int, passthrough: list[str]) -> "Terminal":
        workdir = root / "proj"
        shutil.copytree(REPO_ROOT, workdir, ignore=IGNORE, symlinks=True)
        for name in (".venv", ".tools"):  # `make run` finds its environment built: it goes straight to serving
            (workdir / name).symlink_to(REPO_ROOT / name)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(root)), "LANG": "C.UTF-8",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOST": "127.0.0.1"}
        # The machine's own network settings (a reader's shell has them): CA bundles and proxies,
        # so `npm install` in a doc reaches the registry as it would for the reader.
        env.update({name: value for name, value in os.environ.items() if name in MACHINE_ENV or name.lower().endswith("_proxy")})
        env.update({name: os.environ[name] for name in passthrough if os.environ.get(name)})
        return cls(workdir=workdir, service_port=service_port, env=env)

    # ------------------------------------------------------------------------------ ports
    def port_map(self, doc: str) -> dict[int, int]:
        main = self.ports.get("README.md", {})
        return {SERVICE_PORT: self.service_port, **main, **self.ports.get(doc, {})}

    def rewrite(self, block: Block, extra: dict[int, int] | None = None) -> str:
        mapping = {**self.port_map(block.doc), **(extra or {})}

        def replace(match: re.Match[str]) -> str:
            port = int(match.group(2))
            return f"{match.group(1)}{mapping.get(port, port)}"

        return re.sub(r"((?:127\.0\.0\.1|localhost):|--port[ =])(\d{4,5})\b", replace, block.text)

    # ------------------------------------------------------------------------------ running
    def run(self, block: Block, blocks: list[Block], timeout_s: float = 180) -> Result:
        """Run a bash, python or js block to completion. Python and JS run in the reader's shell:
        after the lines of this document's earlier shell blocks that set its environment."""
        script = self.rewrite(block)
        shell = "; ".join(shell_state(block, blocks)) or "true"
        scratch = self.workdir.parent / f"block-{block.index}-{Path(block.doc).stem}"
        scratch.mkdir(exist_ok=True)
        if block.lang == "bash":
            command = script
        elif block.lang == "python":
            (scratch / "snippet.py").write_text(script)
            command = f"{shell}; exec .venv/bin/python {scratch / 'snippet.py'}"
        elif block.lang == "js":
            (scratch / "snippet.mjs").write_text(script)
            modules = scratch / "node_modules"
            if not modules.exists():
                modules.symlink_to(REPO_ROOT / "tests" / "node" / "node_modules")
            command = f"{shell}; exec node {scratch / 'snippet.mjs'}"
        else:
            raise ValueError(f"{block.id}: cannot run a {block.lang!r} block")
        done = subprocess.run(["bash", "-c", command], cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, start_new_session=True)
        return Result(done.returncode, done.stdout, done.stderr)

    def write_file(self, block: Block) -> Path:
        path = self.workdir / block.args.split()[0]
        path.write_text(self.rewrite(block))
        return path

    def start(self, block: Block, timeout_s: float = 240) -> Server:
        """Start a server block; return once its port answers HTTP."""
        documented = [int(p) for p in re.findall(r"--port[ =](\d+)", block.text)] or [MAIN_PORT]
        port = free_port()
        log = self.workdir.parent / f"server-{Path(block.doc).stem}-{block.line}.log"
        env = {**self.env, "PORT": str(port)}
        with open(log, "wb") as out:
            process = subprocess.Popen(["bash", "-c", self.rewrite(block, {documented[0]: port})], cwd=self.workdir, env=env,
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        server = Server(block, process, port, log)
        self.servers.setdefault(block.doc, []).append(server)
        self.ports.setdefault(block.doc, {})[documented[0]] = port
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{block.id}: the server exited with {process.returncode}:\n{server.tail()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                return server
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{block.id}: nothing answered on the port in {timeout_s:.0f} s:\n{server.tail()}") from None
                time.sleep(0.3)

    def prepare(self, block: Block, blocks: list[Block]) -> None:
        """Apply what the reader did before ``block``: the README's ``make run``, and this
        document's earlier file and server blocks; stop other documents' servers."""
        for doc in [d for d in self.servers if d not in (block.doc, "README.md")]:
            self.stop(doc)
        earlier = [b for b in blocks if b.doc == "README.md" and b.kind == "server"][:1]
        earlier += [b for b in blocks if b.doc == block.doc and b.index < block.index and b.kind in ("file", "server")]
        for previous in earlier:
            if previous.id in self.done:
                continue
            self.done.add(previous.id)
            self.write_file(previous) if previous.kind == "file" else self.start(previous)

    def stop(self, doc: str | None = None) -> None:
        for name in [doc] if doc else list(self.servers):
            for server in self.servers.pop(name, []):
                _kill_group(server.process)
                self.done.discard(server.block.id)
            self.ports.pop(name, None)


ENV_LINE = re.compile(r"^\s*(set [-+]a\b|source |\. |export [A-Za-z_])")


def shell_state(block: Block, blocks: list[Block]) -> list[str]:
    """The lines of the document's earlier shell blocks (not servers: they run in their own
    terminal) that change the shell's environment, in order: what a reader's terminal holds."""
    return [line.split("  #")[0].strip() for b in blocks
            if b.doc == block.doc and b.index < block.index and b.lang == "bash" and b.kind not in ("server", "skip", "needs")
            for line in b.text.splitlines() if ENV_LINE.match(line)]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (workers included), SIGKILL what is left after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 10
        while _group_alive(process.pid) and time.monotonic() < deadline:
            if process.poll() is None:
                try:
                    process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.1)
        if not _group_alive(process.pid):
            break
    if process.poll() is None:
        process.wait(timeout=5)
