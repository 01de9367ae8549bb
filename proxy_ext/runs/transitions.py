"""What a client's cancel or approval decisions do to a stored run (the mutations
:meth:`RunStore.update` applies atomically; each returns False when the run is past them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from proxy_ext.agent.state import Decision
from proxy_ext.runs.envelopes import final_envelope
from proxy_ext.runs.store import FINISHED, RunRecord

__all__ = ["CANCELLED", "record_decisions", "request_cancel"]

CANCELLED = "cancelled on request (POST /agent/runs/{id}/cancel)"


def request_cancel(r: RunRecord) -> bool:
    """A running run is asked to stop (its worker does, within a tick); any other ends at once."""
    if r.status in FINISHED:
        return False
    if r.status == "running":
        r.cancel_requested = True
    else:
        r.status, r.envelope, r.pending = "cancelled", final_envelope(r, "cancelled", CANCELLED), None
    return True


def record_decisions(decisions: Mapping[str, Decision], now: float) -> Callable[[RunRecord], bool]:
    """Adds ``decisions`` to a run still awaiting approval; once every pending call is decided it is queued again."""

    def mutate(r: RunRecord) -> bool:
        if r.status != "awaiting_approval" or (r.approval_deadline or 0) < now:
            return False
        r.decisions.update({k: {"approve": d.approve, "reason": d.reason} for k, d in decisions.items()})
        if {c.get("id") for c in r.pending or []} <= set(r.decisions):
            r.status, r.pending, r.approval_deadline = "queued", None, None
        return True

    return mutate
