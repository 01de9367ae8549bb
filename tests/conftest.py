"""Shared fixtures: the fake upstream (session-wide) and helpers to start real proxies."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import FakeUpstream, ProxyProcess, fake_model_entry
from tests.harness.proxy import RUNNING
from tests.harness.redis_server import RedisServer, redis_available

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


_PROXY_FIXTURES = {"upstream", "proxy", "default_proxy"}
_SLOW_MODULES = {"test_make_run", "test_node_gateway", "test_codex_cli_e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that start a real proxy (or run make / node) are ``integration``; the rest is the unit
    tier that ``make test-fast`` runs (``-m "not integration"``)."""
    for item in items:
        module = getattr(item, "module", None)
        starts_processes = module is not None and ("ProxyProcess" in vars(module) or module.__name__.rsplit(".", 1)[-1] in _SLOW_MODULES)
        if starts_processes or _PROXY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


_SESSION_PROXY_USE = re.compile(r"^(?:async )?def test_\w*\([^)]*\b(?:proxy|default_proxy)\b", re.M)


def _session_proxy_modules(root: Path) -> set[str]:
    """Test files with a test that uses a session-wide proxy (``proxy``, ``default_proxy``)."""
    return {f"tests/{path.name}" for path in root.glob("test_*.py") if _SESSION_PROXY_USE.search(path.read_text())}


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the compat environments have no xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (``make test``), except that the files using the session-wide proxies go
    to one worker together: each worker running one of them would start those proxies again
    (about 8 s of CPU each)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    shared = _session_proxy_modules(Path(__file__).parent)

    class SharedProxiesFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "session-proxies" if scope in shared else scope

    return SharedProxiesFirst(config, log)


LIVE_SKIP = "live tier (real providers): run `make smoke-live`"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live", action="store_true", default=False,
                     help="run the tests marked `live` against real providers (make smoke-live)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Without --live the live tier is skipped here, from one place with one reason (before each
    # test's own skip conditions), so `make test` reports it as a single folded line.
    if item.get_closest_marker("live") is not None and not item.config.getoption("--live"):
        pytest.skip(LIVE_SKIP)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proxy in RUNNING:
            report.sections.append((f"proxy log ({proxy.config_path.name}, port {proxy.port})", proxy.log(200)))


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    """The fake OpenAI-compatible upstream, a real HTTP server shared by the session."""
    with FakeUpstream() as server:
        yield server


def base_config(upstream: FakeUpstream, proxy_ext: dict[str, Any] | None = None, *, extension: bool = True, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A proxy config: the echo model, a wildcard ``fake/*`` route to the upstream, and proxy_ext.

    ``fake/<name>`` reaches the upstream as model ``<name>``, so each test scripts its own model name.
    """
    config: dict[str, Any] = {
        "model_list": [
            {"model_name": "echo", "litellm_params": {"model": "echo/echo-1"}},
            fake_model_entry("fake/*", upstream.base_url, "*"),
            *(models or []),
        ],
        "litellm_settings": {
            "custom_provider_map": [{"provider": "echo", "custom_handler": "proxy_ext.providers.echo.handler"}],
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    if extension:
        config["litellm_settings"]["callbacks"] = ["proxy_ext.extension"]
    if proxy_ext is not None:
        config["proxy_ext"] = proxy_ext
    return config


@pytest.fixture(scope="session")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    """A proxy with the extension on and default settings, shared by the session."""
    with ProxyProcess(base_config(upstream, {"agent": {"default_model": "echo"}})) as process:
        yield process


@pytest.fixture(scope="session")
def default_proxy() -> Iterator[ProxyProcess]:
    """The repository's own proxy_config.yaml, started from the repo root as `make run` does."""
    from tests.harness import REPO_ROOT

    env = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
    with ProxyProcess(REPO_ROOT / "proxy_config.yaml", cwd=REPO_ROOT, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server for the module's tests (skipped, saying why, where none can be started)."""
    reason = redis_available()
    if reason:
        pytest.skip(reason)
    with RedisServer() as server:
        yield server.url
