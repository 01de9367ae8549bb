"""The global run limit across instances: one Redis lease per run (``scale.global_max_concurrent_runs``).

Leases are members of a sorted set scored by their expiry (Redis server time, so instance clocks
do not matter). Taking one is one Lua script: drop expired leases, compare the count with the
limit (and the key's own set with the per-key limit), add. A daemon thread renews this process's
leases every third of ``scale.lease_ttl_s`` — adding them again when Redis lost them (restarted
without persistence), so the limit keeps counting runs in progress; when an instance dies its
leases expire and the slots are free again. Calls are synchronous with a short socket timeout
(``scale.redis_timeout_s``), behind a :class:`~proxy_ext.outage.Breaker`: a Redis that is down or
hung costs one timeout (on the event loop, where runs take their leases), not one per run; until a
background ping gets an answer, new runs are refused at once (503 with ``Retry-After``) or start
without the limit (``scale.on_redis_error: allow``).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

from proxy_ext.exceptions import RequestError as AgentRequestError
from proxy_ext.exceptions import Unavailable
from proxy_ext.outage import Breaker

__all__ = ["LimitUnavailable", "RedisLeases", "redis_problem", "redis_url"]

logger = logging.getLogger("proxy_ext.scale")

GLOBAL_LIMIT = "proxy_ext.scale.global_max_concurrent_runs"

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, per_key, ttl, check_only = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then return 1 end
if #KEYS > 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if per_key >= 0 and redis.call('ZCARD', KEYS[2]) >= per_key then return 2 end
end
if check_only then return 0 end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[i + 1])  -- not XX: a Redis restarted empty gets this instance's leases back
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 0
"""


def redis_url(configured: str | None) -> str | None:
    """``scale.redis_url``, else LiteLLM's ``REDIS_URL``, else ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``."""
    if configured:
        return configured
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    host = os.environ.get("REDIS_HOST")
    if not host:
        return None
    password = os.environ.get("REDIS_PASSWORD")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{os.environ.get('REDIS_PORT', '6379')}/0"


def redis_problem(scale: Any, timeout_s: float) -> str | None:
    """Why the global limit's Redis cannot be used (None: it answers). A fixed reason, no address."""
    import redis

    url = redis_url(scale.redis_url)
    if url is None:
        return "no Redis configured"
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis unreachable ({type(exc).__name__})"
    finally:
        client.close()
    return None


class LimitUnavailable(Unavailable):
    """The global run limit's Redis cannot be reached (503 with ``Retry-After``)."""


class _LimitBreaker(Breaker):
    def error(self, reason: str) -> LimitUnavailable:
        return LimitUnavailable(f"the global run limit ({GLOBAL_LIMIT}) is unavailable: Redis at {self.where} is unreachable "
                                f"({reason}); retry in a few seconds")


class RedisLeases:
    """Leases of this process in the Redis at ``url``."""

    def __init__(self, url: str, limit: int, *, prefix: str = "proxy_ext:runs", ttl_s: float = 30.0,
                 timeout_s: float = 0.5, on_error: str = "reject") -> None:
        import redis  # LiteLLM's dependency for its own Redis features

        self.limit = limit
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.on_error = on_error
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._take = self.client.register_script(_TAKE)
        self._renew = self.client.register_script(_RENEW)
        self._held: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._uncertain: list[tuple[str, list[str]]] = []
        """Leases whose take timed out: Redis may still add them; removed when it answers again."""
        self._where = url.split("@")[-1]
        consequence = "agent runs start without the global limit" if on_error == "allow" else "new agent runs answer 503"
        self.breaker = _LimitBreaker(self._where.removeprefix("redis://"), (redis.ConnectionError, redis.TimeoutError), self.client.ping,
                                     what="the global run limit's Redis", while_down=consequence)

    @classmethod
    def from_settings(cls, scale: Any) -> "RedisLeases":
        url = redis_url(scale.redis_url)
        if url is None:
            raise AgentRequestError(f"{GLOBAL_LIMIT} is set but no Redis is configured (scale.redis_url)", status=503)
        return cls(url, scale.global_max_concurrent_runs, prefix=scale.redis_key_prefix, ttl_s=scale.lease_ttl_s,
                   timeout_s=scale.redis_timeout_s, on_error=scale.on_redis_error)

    def _keys(self, owner: str | None, per_key: int | None) -> list[str]:
        keys = [self.prefix]
        if owner is not None and per_key is not None:
            keys.append(f"{self.prefix}:key:{owner}")
        return keys

    def _run(self, lease: str, owner: str | None, per_key: int | None, check_only: bool) -> bool:
        """True: taken (or would be). Raises 429 when full, 503 when Redis fails and on_error is reject."""
        import redis

        sent = not self.breaker.down
        try:
            if self._uncertain and sent:
                self._forget_uncertain()
            verdict = self.breaker.call(self._take, keys=self._keys(owner, per_key),
                                        args=[lease, self.limit, -1 if per_key is None else per_key, self.ttl_ms, "1" if check_only else "0"])
        except (Unavailable, redis.RedisError) as exc:
            if sent and not check_only:  # the script may have run after the timeout: not counted for good
                with self._lock:
                    self._uncertain.append((lease, self._keys(owner, per_key)))
            if self.on_error == "allow":
                if not isinstance(exc, Unavailable):  # an outage is logged once, by the breaker
                    logger.warning("proxy_ext: Redis at %s failed (%s); starting the run without the global limit", self._where, exc)
                return False
            if isinstance(exc, Unavailable):
                raise
            raise LimitUnavailable(f"the global run limit ({GLOBAL_LIMIT}) is unavailable: Redis at {self._where}: "
                                   f"{type(exc).__name__}: {exc}") from None
        if verdict == 1:
            raise AgentRequestError(f"too many agent runs in progress across instances ({self.limit}, {GLOBAL_LIMIT}); retry shortly", status=429)
        if verdict == 2:
            raise AgentRequestError(f"this API key already has {per_key} agent runs in progress across instances "
                                    "(proxy_ext.scale.max_concurrent_runs_per_key); retry shortly", status=429)
        return True

    def _forget_uncertain(self) -> None:
        """Remove the leases whose take timed out (a hung Redis may run the script later)."""
        with self._lock:
            uncertain, self._uncertain = self._uncertain, []
        pipe = self.client.pipeline(transaction=False)
        for lease, keys in uncertain:
            for key in keys:
                pipe.zrem(key, lease)
        try:
            self.breaker.call(pipe.execute)
        except BaseException:
            with self._lock:
                self._uncertain.extend(uncertain)
            raise

    def check(self, owner: str | None, per_key: int | None) -> None:
        self._run("check", owner, per_key, check_only=True)

    def take(self, owner: str | None, per_key: int | None) -> str | None:
        """A new lease id (None: Redis failed and ``on_redis_error`` is ``allow``)."""
        lease = f"{os.getpid()}:{uuid.uuid4().hex}"
        if not self._run(lease, owner, per_key, check_only=False):
            return None
        with self._lock:
            self._held[lease] = self._keys(owner, per_key)[-1] if owner is not None and per_key is not None else None
            if self._renewer is None:  # a renewer runs while this process holds leases
                self._renewer = threading.Thread(target=self._renew_forever, name="proxy_ext-lease-renewer", daemon=True)
                self._renewer.start()
        return lease

    def give(self, lease: str, owner: str | None) -> None:
        with self._lock:
            key = self._held.pop(lease, None)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.prefix, lease)
            if key:
                pipe.zrem(key, lease)
            self.breaker.call(pipe.execute)  # while Redis is down: at once
        except Unavailable:  # logged once per outage by the breaker; the lease expires by itself
            pass
        except Exception as exc:  # the lease expires by itself
            logger.warning("proxy_ext: could not return run lease to Redis at %s (%s); it expires in %.0f s", self._where, exc, self.ttl_ms / 1000)

    def renew(self) -> None:
        """Push the expiry of every lease this process holds (the renewer thread calls this)."""
        with self._lock:
            held = list(self._held.items())
        if not held:
            return
        keys: list[str] = []
        args: list[Any] = [self.ttl_ms]
        for lease, key in held:
            keys.append(self.prefix)
            args.append(lease)
            if key:
                keys.append(key)
                args.append(lease)
        self.breaker.call(self._renew, keys=keys, args=args)  # a renewal that times out opens the breaker, off the loop
        with self._lock:
            given = [(lease, key) for lease, key in held if lease not in self._held]
        if given:  # given back while the renewal ran, which may have put them back after give() removed them
            pipe = self.client.pipeline(transaction=False)
            for lease, key in given:
                pipe.zrem(self.prefix, lease)
                if key:
                    pipe.zrem(key, lease)
            pipe.execute()

    def _renew_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.ttl_ms / 3000):
            with self._lock:
                if not self._held:
                    self._renewer = None
                    return
            try:
                self.renew()
            except Exception as exc:
                logger.warning("proxy_ext: renewing run leases in Redis at %s failed: %s", self._where, exc)

    def count(self) -> int:
        """Leases in force across instances (for tests, doctor and bench)."""
        return int(self.client.zcount(self.prefix, "(" + str(self._now_ms()), "+inf"))

    def _now_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000
