"""Helpers shared by the benchmarks: alternating run orders and per-request proxy CPU."""

from __future__ import annotations

from collections.abc import Iterator

from tests.harness import ProxyProcess

__all__ = ["Cpu", "orders"]


class Cpu:
    """CPU ms per request of each proxy over a section (from /proc: independent of machine load)."""

    def __init__(self, proxies: dict[str, ProxyProcess]) -> None:
        self.proxies = proxies
        self.start = {name: p.cpu_seconds() for name, p in proxies.items()}

    def per_request_ms(self, requests: int) -> dict[str, float]:
        return {name: (p.cpu_seconds() - self.start[name]) * 1000 / requests for name, p in self.proxies.items()}


def orders(names: list[str], rounds: int) -> Iterator[list[str]]:
    """``names`` in order, then reversed, alternately: drift on a shared machine hits every arm alike."""
    for index in range(rounds):
        yield names if index % 2 == 0 else names[::-1]
