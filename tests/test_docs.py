"""Docs are part of the feature: the config reference matches the schema, and every YAML snippet in
the docs that carries a proxy_ext: section (or is a whole config) is valid."""

from __future__ import annotations

import re

import pytest
import yaml

from proxy_ext.cli import diagnose
from proxy_ext.config import parse_config
from proxy_ext.config_reference import render
from tests.harness import REPO_ROOT

DOCS = sorted([REPO_ROOT / "README.md", *REPO_ROOT.glob("docs/**/*.md")])
BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.S)


def yaml_blocks():
    for path in DOCS:
        for index, match in enumerate(BLOCK.finditer(path.read_text())):
            yield pytest.param(match.group(1), id=f"{path.relative_to(REPO_ROOT)}#{index}")


def test_config_reference_is_generated_from_the_schema():
    assert (REPO_ROOT / "docs" / "config.md").read_text() == render(), "run: .venv/bin/python -m proxy_ext.config_reference > docs/config.md"


def test_every_schema_key_is_documented():
    text = (REPO_ROOT / "docs" / "config.md").read_text()
    for key in ["proxy_ext.agent.limits.max_request_bytes", "proxy_ext.tools.exec.shell_mode", "proxy_ext.tools.http.forward_authorization",
                "proxy_ext.traces.redact_patterns", "proxy_ext.cost.enabled", "proxy_ext.ready.cache_s", "proxy_ext.providers.codex_agent.cli.binary"]:
        assert f"`{key}`" in text


@pytest.mark.parametrize("snippet", list(yaml_blocks()))
def test_yaml_snippets_in_docs_are_valid(snippet):
    document = yaml.safe_load(snippet)
    assert isinstance(document, dict), "a YAML snippet in the docs should be a mapping"
    if "proxy_ext" in document:
        parse_config(document["proxy_ext"], env={"LITELLM_MASTER_KEY": "x", "TOOL_HOST_TOKEN": "x", "CODEX_AGENT_API_KEY": "x", "CODEX_GATEWAY_KEY": "x",
                                                 "REDIS_URL": "redis://127.0.0.1:6379/0"})
    settings = document.get("litellm_settings") or {}
    for callback in settings.get("callbacks") or []:
        assert callback in {"proxy_ext.extension"} or not callback.startswith("proxy_ext"), callback


@pytest.mark.parametrize("path", sorted(REPO_ROOT.glob("config/*.yaml")) + [REPO_ROOT / "proxy_config.yaml"], ids=lambda p: p.name)
def test_example_configs_pass_doctor(path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    monkeypatch.chdir(path.parent)
    report = diagnose(path)
    assert report.ok, report.problems
    assert report.capabilities["extension"].startswith("on")


def test_full_config_snippets_in_docs_pass_doctor(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-doctor-test-key-0123456789abcdef")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    checked = 0
    for param in yaml_blocks():
        document = yaml.safe_load(param.values[0])
        if isinstance(document, dict) and "model_list" in document and "proxy_ext" in document:
            document.get("proxy_ext", {}).pop("traces", None)  # absolute paths in examples need not exist here
            path = tmp_path / f"snippet{checked}.yaml"
            path.write_text(yaml.safe_dump(document))
            report = diagnose(path)
            assert report.ok, (param.id, report.problems)
            checked += 1
    assert checked >= 1
