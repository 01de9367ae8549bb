"""Which provider API key variables a LiteLLM model string needs and the environment lacks; the
LiteLLM provider a misspelt prefix was probably meant as; the ``.env`` file LiteLLM loads itself."""

from __future__ import annotations

import contextlib
import difflib
import io
from collections.abc import Iterable

__all__ = ["close_provider", "load_litellm_dotenv", "missing_api_keys", "publicly_known_master_key"]


def load_litellm_dotenv() -> None:
    """Load the ``.env`` file the proxy loads at start-up, as it does: ``import litellm`` (with
    ``LITELLM_MODE`` unset or ``DEV``) reads the first ``.env`` in a folder above LiteLLM's package
    (the checkout's, for a ``.venv`` inside a checkout) into the environment, where the variables
    already set win. So ``litellm --config …`` gets a master key and the fork's variables from
    ``.env`` without a ``source``, and a check of the config has to see them too."""
    import litellm  # noqa: F401  # the import loads the file (litellm/__init__.py)


def publicly_known_master_key(value: str) -> bool:
    """Whether LiteLLM refuses ``value`` as a master key because it is published (``sk-1234`` of its docs)."""
    import hashlib

    try:
        from litellm.proxy.auth.master_key_boot_check import PUBLICLY_KNOWN_MASTER_KEY_SHA256_DIGESTS as known
    except ImportError:  # releases before the boot check: no key is refused
        return False
    return hashlib.sha256(value.encode()).hexdigest() in known


def close_provider(name: str, also: Iterable[str] = ()) -> str | None:
    """The LiteLLM provider (or name of ``also``) closest to ``name`` (``opneai`` → ``openai``), if
    one is close."""
    import litellm

    names = [str(getattr(p, "value", p)) for p in litellm.provider_list] + list(also)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def missing_api_keys(model: str) -> list[str]:
    """The ``*_API_KEY`` variables LiteLLM reads for ``model`` (``openai/gpt-4o-mini``) that are not
    set; only keys (a base URL, an API version or cloud credentials may come from elsewhere)."""
    import litellm

    with contextlib.redirect_stdout(io.StringIO()):  # LiteLLM prints a provider list for names it does not know
        try:
            found = litellm.validate_environment(model=model)
        except Exception:  # noqa: BLE001 - a model LiteLLM cannot place: nothing to say here
            return []
    return [name for name in found.get("missing_keys") or [] if str(name).endswith("_API_KEY")]
