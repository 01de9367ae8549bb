"""Test harness shared by every test module and the benchmarks: the real proxy and a fake upstream."""

from tests.harness.fake_upstream import FakeUpstream, Reply, call, free_port
from tests.harness.proxy import REPO_ROOT, ProxyProcess, fake_model_entry

__all__ = ["FakeUpstream", "ProxyProcess", "REPO_ROOT", "Reply", "call", "fake_model_entry", "free_port"]
