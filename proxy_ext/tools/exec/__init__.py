"""Sandboxed ``exec_python`` / ``exec_shell`` tools (off by default; ``proxy_ext.tools.exec``).

See :mod:`proxy_ext.tools.exec.forkserver` for how a call is isolated and ``docs/tools.md`` for the
threat model.
"""

from proxy_ext.tools.exec.backend import ExecToolBackend, sandbox_problem

__all__ = ["ExecToolBackend", "sandbox_problem"]
