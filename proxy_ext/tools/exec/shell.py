"""exec_shell command lines: allowlist mode parses them with shlex and runs the argv without a shell."""

from __future__ import annotations

import os
import shlex
import shutil

__all__ = ["CommandRefused", "METACHARACTERS", "parse_allowlisted"]

METACHARACTERS = set(";&|<>()`$\n\r*?[]{}~!#\\")
"""Characters a shell would interpret. In allowlist mode there is no shell, so a command line using
them would not do what the model meant; it is refused with a message instead."""


class CommandRefused(ValueError):
    """The command line is not allowed in allowlist mode; the message says why."""


def _check_env(args: list[str]) -> None:
    # ``env`` may print the environment but not start another program.
    for arg in args:
        if arg.startswith("-") and arg not in ("-0", "--null"):
            raise CommandRefused(f"env option {arg!r} is not allowed in allowlist mode")
        if "=" not in arg:
            raise CommandRefused("env may only print the environment in allowlist mode (it would run another program)")


_FIND_EXEC = {"-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"}


def _check_find(args: list[str]) -> None:
    for arg in args:
        if arg in _FIND_EXEC:
            raise CommandRefused(f"find {arg} is not allowed in allowlist mode")


_ARGUMENT_CHECKS = {"env": _check_env, "find": _check_find}


def parse_allowlisted(command: str, allowlist: list[str], path: str) -> tuple[str, list[str]]:
    """(executable path, argv) for an allowlisted command line, or :class:`CommandRefused`."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        argv = list(lexer)
    except ValueError as exc:  # unbalanced quotes
        raise CommandRefused(f"cannot parse the command line: {exc}") from None
    if not argv:
        raise CommandRefused("empty command")
    # shlex keeps quoted text intact, so scan the raw line outside quotes for shell syntax.
    unquoted = _unquoted_text(command)
    found = sorted(set(unquoted) & METACHARACTERS)
    if found:
        raise CommandRefused(
            f"shell metacharacters {''.join(found)!r} are not allowed in allowlist mode (no shell runs the command: "
            "one program with plain arguments only; quote literal text)"
        )
    name = argv[0]
    if os.sep in name:
        raise CommandRefused(f"{name!r}: give the program by name, not by path, in allowlist mode")
    if name not in allowlist:
        raise CommandRefused(f"{name!r} is not in tools.exec.shell_allowlist (allowed: {', '.join(sorted(allowlist))})")
    check = _ARGUMENT_CHECKS.get(name)
    if check:
        check(argv[1:])
    executable = shutil.which(name, path=path)
    if executable is None:
        raise CommandRefused(f"{name!r} is allowlisted but not found on the sandbox PATH")
    return executable, argv


def _unquoted_text(command: str) -> str:
    """The characters of ``command`` outside single and double quotes (a backslash counts as unquoted)."""
    out: list[str] = []
    quote: str | None = None
    for char in command:
        if quote:
            if char == quote:
                quote = None
            elif quote == '"' and char in "$`\\":  # still special inside double quotes
                out.append(char)
        elif char in "'\"":
            quote = char
        else:
            out.append(char)
    return "".join(out)
