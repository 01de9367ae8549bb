"""Model providers: ``echo`` (hermetic) and ``codex_agent``."""
