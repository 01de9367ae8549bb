"""Process-wide state of the extension: the validated settings and where they came from.

Kept in one canonical module. LiteLLM may exec an entry-point file a second time as a separate
module instance (``get_instance_fn`` loads ``a/b.py`` by path when it sits next to the config);
such copies import this module normally and so share this one state.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_ext.config import ConfigError, ProxyExtConfig, load_config_file, parse_config

__all__ = ["Runtime", "get_runtime", "installed_runtime", "load_runtime", "set_runtime"]


@dataclass(frozen=True)
class Runtime:
    """The extension's settings as loaded at proxy start-up."""

    settings: ProxyExtConfig
    """The validated ``proxy_ext:`` section."""
    config_path: Path | None = None
    """The proxy config file the settings were read from (None: defaults, no file)."""
    document: dict[str, Any] = field(default_factory=dict)
    """The whole YAML document (LiteLLM's sections included), for cross-checks."""

    @property
    def base_dir(self) -> Path:
        """Directory relative paths in the config are resolved against."""
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve_path(self, value: str) -> Path:
        """An absolute path for a config value, relative to the config file's directory."""
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.base_dir / path


_lock = threading.Lock()
_runtime: Runtime | None = None


def load_runtime(config_path: str | os.PathLike[str] | None) -> Runtime:
    """Read and validate the ``proxy_ext:`` section of ``config_path`` (raises ConfigError)."""
    if config_path is None:
        return Runtime(settings=parse_config(None))
    document, settings = load_config_file(config_path)
    return Runtime(settings=settings, config_path=Path(config_path).resolve(), document=document)


def set_runtime(runtime: Runtime) -> None:
    """Install the runtime (done once by the extension at start-up; tests may replace it)."""
    global _runtime
    with _lock:
        _runtime = runtime


def installed_runtime() -> Runtime | None:
    """The runtime installed by the extension (or a provider that loaded it), None when none was."""
    with _lock:
        return _runtime


def get_runtime() -> Runtime:
    """The installed runtime, or defaults when the extension was not started through a config."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(settings=parse_config(None))
        return _runtime


__all__ += ["ConfigError"]
