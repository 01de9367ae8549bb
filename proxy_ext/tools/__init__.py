"""Agent tools: the backend contract, sandboxed exec tools and the HTTP tool-host invoker."""

__all__: list[str] = []
