"""The fake ``codex`` executable (see ``codex`` in this directory) and a helper to install it."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("codex")
RECORDINGS = Path(__file__).with_name("recordings")


def install_fake_codex(directory: Path) -> Path:
    """Copy the fake into ``directory`` with this interpreter in its shebang; return its path.

    The copy runs the real interpreter directly (no ``env python3`` or pyenv shim in between), so
    the environment it reports is exactly the one the provider gave it.
    """
    text = SOURCE.read_text().split("\n", 1)[1]
    text = text.replace('HERE = Path(__file__).resolve().parent', f'HERE = Path({str(SOURCE.parent)!r})')
    target = directory / "codex"
    target.write_text(f"#!{sys.executable}\n{text}")
    target.chmod(0o755)
    return target
