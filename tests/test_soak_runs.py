"""A short round of the durable-run soak (tests/soak_runs.py; the long one: ``python -m tests.soak_runs``):
concurrent background, approval-gated, cancelled and dropped runs on Redis with the global limit; afterwards
every run ended, no 5xx, no slot, lease or open run left, no traceback in the proxy log."""

from __future__ import annotations

import pytest

from tests.harness.redis_server import redis_available
from tests.soak_runs import soak

pytestmark = [pytest.mark.integration, pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))]


def test_a_short_soak_of_durable_runs_leaves_nothing_behind():
    report = soak(rounds=1, runs=36, workers=1, seed=7, global_limit=6, instance_limit=8, verbose=False)
    (round_,) = report["rounds"]
    assert not report["problems"], report["problems"]
    assert sum(round_["outcomes"].values()) == 36 and not any(status >= 500 for status in round_["statuses"])
