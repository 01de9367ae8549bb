"""The fork's environment variables next to the ``proxy_ext:`` keys that replace them: what an
operator who set both, or set a switch to a value it does not understand, should be told.

:func:`proxy_ext.config.apply_environment` decides the values (its precedence is documented in
docs/config.md); this module only explains the cases an operator would otherwise not see: both a
variable and its key set to different values (which one is used), a switch variable that turns
off an explicit ``true`` cannot (it only turns things on), and a switch value that is neither on
nor off (read as off). Values of key variables are never repeated in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FLAG_ON", "FLAG_OFF", "environment_notes"]

FLAG_ON = {"1", "true", "yes", "on"}
FLAG_OFF = {"", "0", "false", "no", "off"}

# variable, the key under proxy_ext:, which side wins, whether the value may be shown
_VALUES = (
    ("MINI_AGENT_STORE_PATH", ("traces", "path"), "env", True),
    ("CODEX_AGENT_API_BASE", ("providers", "codex_agent", "api_base"), "config", True),
    ("CODEX_AGENT_API_KEY", ("providers", "codex_agent", "api_key"), "config", False),
)
_FLAGS = (
    ("MINI_AGENT_STORE_TRACES", ("traces", "enabled"), "traces are on"),
    ("LITELLM_ENABLE_CODEX_AGENT", ("providers", "codex_agent", "enabled"), "the codex-agent provider is on"),
)


def _key(raw: Any, path: tuple[str, ...]) -> Any:
    node = raw
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _value_note(var: str, key: str, wins: str, show: bool, env_value: str, config_value: Any) -> str:
    shown = f" ({env_value!r} and {config_value!r})" if show else " (different keys)"
    if wins == "env":
        used = f"{var} is used, as documented: the environment wins over proxy_ext.{key}"
    else:
        used = f"proxy_ext.{key} is used, as documented: the config wins over {var}"
    return f"{var} and proxy_ext.{key} are both set, to different values{shown}: {used}; unset one of them"


def environment_notes(raw: Any, env: Mapping[str, str]) -> list[str]:
    """One sentence per thing to tell about the fork's variables in ``env`` against the raw
    ``proxy_ext:`` section (``os.environ/NAME`` references already resolved)."""
    notes = []
    for var, path, wins, show in _VALUES:
        key = ".".join(path)
        env_value, config_value = env.get(var), _key(raw, path)
        if env_value and config_value not in (None, "") and str(config_value) != env_value:
            notes.append(_value_note(var, key, wins, show, env_value, config_value))
    for var, path, effect in _FLAGS:
        key = ".".join(path)
        value = env.get(var)
        if value is None:
            continue
        flag = value.strip().lower()
        if flag not in FLAG_ON | FLAG_OFF:
            notes.append(f"{var}={value!r} is not a value it understands (on: 1, true, yes, on; off: 0, false, no, off): "
                         f"it is read as off")
        elif flag in FLAG_ON and _key(raw, path) is False:
            notes.append(f"{var}={value} and proxy_ext.{key}: false are both set: {effect} (the variable turns it on "
                         f"whatever the config says); unset {var} to keep it off")
        elif flag in FLAG_OFF and flag and _key(raw, path) is True:
            notes.append(f"{var}={value} does not turn off proxy_ext.{key}: true (the variable can only turn it on): "
                         f"{effect}; set proxy_ext.{key}: false to turn it off")
    return notes
