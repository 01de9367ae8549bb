"""The proxy when its Redis goes away: restarted empty (no persistence), unreachable, or hung.

A real ``redis-server`` (tests/harness/redis_server.py) is killed, started again on its port and
stopped with SIGSTOP under real proxies; nothing is mocked.
"""

from __future__ import annotations

import time

import pytest

from proxy_ext.exceptions import RequestError
from proxy_ext.scale.leases import RedisLeases
from tests.harness import ProxyProcess  # noqa: F401 (the proxies of this module make it integration)
from tests.harness.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(redis_available() is not None, reason=str(redis_available()))


def _until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# ----------------------------------------------------------------------------------- leases

def test_leases_lost_in_a_redis_restart_are_added_again():
    """A Redis without persistence comes back empty: the instance's renewal puts its leases back,
    so the global limit still counts the runs in progress (and a given-back lease stays gone)."""
    with RedisServer() as server:
        leases = RedisLeases(server.url, 2, ttl_s=3)
        held = [leases.take("key-a", 2), leases.take("key-a", 2)]
        assert leases.count() == 2
        server.restart()
        _until(lambda: leases.count() == 2, 5, "the leases were not added again after the restart")
        with pytest.raises(RequestError) as refused:
            leases.take("key-b", None)
        assert refused.value.status == 429
        for lease in held:
            leases.give(lease, "key-a")
        time.sleep(1.5)  # a renewal later: what was given back is not re-added
        assert leases.count() == 0
