"""Model providers: ``echo`` (hermetic) and ``codex_agent``."""

__all__: list[str] = []
