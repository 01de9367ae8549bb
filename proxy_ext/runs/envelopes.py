"""The envelope of a durable run that ended outside the run loop."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from proxy_ext.agent.envelope import RunMetrics
from proxy_ext.runs.store import RunRecord

__all__ = ["final_envelope"]


def final_envelope(record: RunRecord, reason: str, error: str, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The envelope of a run that ended outside the loop (cancelled, expired, interrupted, refused at
    start): its transcript and usage as of its last checkpoint."""
    saved = checkpoint or record.checkpoint or {}
    metrics = asdict(RunMetrics(trace_id=record.id))
    if record.envelope:
        metrics.update(record.envelope.get("metrics") or {})
    metrics.update({k: v for k, v in (saved.get("metrics") or {}).items() if k in metrics})
    usage = saved.get("usage") or {}
    metrics.update({k: usage[k] for k in ("prompt_tokens", "completion_tokens", "cost_usd") if k in usage})
    metrics.update(trace_id=record.id, error=error)
    metrics.pop("pending_approvals", None)
    messages = saved.get("added") if saved else (record.envelope or {}).get("messages")
    return {"ok": False, "final_answer": None, "stopped_reason": reason, "messages": list(messages or []), "metrics": metrics}
