"""The durable-run executor's bookkeeping without a proxy: a run over its attempts is interrupted with
its partial transcript, expired approvals fail, cancels and decisions change the stored run."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from types import SimpleNamespace

import pytest

from proxy_ext.agent.errors import AgentRequestError
from proxy_ext.agent.state import Decision
from proxy_ext.config import parse_config
from proxy_ext.runs.service import DurableRuns, _Local
from proxy_ext.runs.store import RunRecord, SqliteRunStore
from proxy_ext.state import Runtime

CHECKPOINT = {"added": [{"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]}, {"role": "tool", "content": "6"}],
              "usage": {"prompt_tokens": 11, "completion_tokens": 3, "cost_usd": 0.25, "requests": 1},
              "metrics": {"iterations": 1, "tool_calls": 1}}


@pytest.fixture
def runs(tmp_path):
    runtime = Runtime(settings=parse_config({"runs": {"path": str(tmp_path / "r.sqlite3"), "max_attempts": 2, "approval_timeout_s": 5}}))
    service = DurableRuns(runtime, SqliteRunStore(tmp_path / "r.sqlite3"))
    yield service
    service.store.close()


def _record(run_id: str, status: str, owner: str = "o", **fields) -> RunRecord:
    return RunRecord(id=run_id, owner=owner, team_id=None, status=status, request={"input": "x"}, caller="sealed", **fields)


def test_a_run_over_its_attempts_is_interrupted_with_its_partial_transcript(runs):
    runs.store.create(_record("a" * 32, "running", attempts=2, lease_owner="dead-worker", lease_until=time.time() - 1,
                              checkpoint=CHECKPOINT))
    asyncio.run(_tick(runs))
    record = runs.store.get("a" * 32)
    assert record.status == "interrupted" and record.lease_owner is None
    envelope = record.envelope
    assert envelope["stopped_reason"] == "interrupted" and envelope["ok"] is False
    assert envelope["messages"] == CHECKPOINT["added"]
    assert envelope["metrics"]["cost_usd"] == 0.25 and envelope["metrics"]["prompt_tokens"] == 11 and "max_attempts" in envelope["metrics"]["error"]
    assert [kind for _, kind, _ in runs.store.events("a" * 32, 0)] == ["run_completed"]


def test_an_expired_approval_fails_the_run(runs):
    runs.store.create(_record("b" * 32, "awaiting_approval", approval_deadline=time.time() - 1, pending=[{"id": "c1"}],
                              checkpoint=CHECKPOINT))
    asyncio.run(_tick(runs))
    record = runs.store.get("b" * 32)
    assert record.status == "failed" and record.envelope["stopped_reason"] == "approval_expired" and record.pending is None
    with pytest.raises(AgentRequestError) as refused:
        asyncio.run(runs.decide(record, {"c1": Decision(True)}))
    assert refused.value.status == 409


def test_decisions_continue_the_run_only_when_every_pending_call_is_decided(runs):
    runs.store.create(_record("c" * 32, "awaiting_approval", approval_deadline=time.time() + 60, pending=[{"id": "c1"}, {"id": "c2"}]))
    with pytest.raises(AgentRequestError) as unknown:
        asyncio.run(runs.decide(runs.store.get("c" * 32), {"nope": Decision(True)}))
    assert unknown.value.status == 400 and "c1, c2" in unknown.value.message
    assert asyncio.run(_decide(runs, "c" * 32, {"c1": Decision(True)})).status == "awaiting_approval"
    done = asyncio.run(_decide(runs, "c" * 32, {"c2": Decision(False, "no")}))
    assert done.status == "queued" and done.decisions == {"c1": {"approve": True, "reason": None}, "c2": {"approve": False, "reason": "no"}}


def test_cancel_a_queued_run_at_once_and_refuse_a_finished_one(runs):
    runs.store.create(_record("d" * 32, "queued"))
    assert asyncio.run(runs.cancel(runs.store.get("d" * 32))).status == "cancelled"
    assert runs.store.get("d" * 32).envelope["stopped_reason"] == "cancelled"
    with pytest.raises(AgentRequestError) as again:
        asyncio.run(runs.cancel(runs.store.get("d" * 32)))
    assert again.value.status == 409


def test_a_running_run_elsewhere_is_flagged_for_its_worker(runs):
    runs.store.create(_record("e" * 32, "running", lease_owner="other", lease_until=time.time() + 60))
    flagged = asyncio.run(runs.cancel(runs.store.get("e" * 32)))
    assert flagged.status == "running" and flagged.cancel_requested


def test_a_run_cancelled_as_it_pauses_for_approval_ends_cancelled(runs):
    # The cancel is stored while the run's paused result is on its way to the store: the cancel wins
    # (it was answered 200), instead of the run waiting an hour for decisions nobody will send.
    runs.store.create(_record("f" * 32, "running", lease_owner=runs.worker, lease_until=time.time() + 60, cancel_requested=True))
    paused = {"ok": False, "final_answer": None, "stopped_reason": "awaiting_approval", "messages": [],
              "metrics": {"pending_approvals": [{"id": "c1"}]}}
    result = SimpleNamespace(envelope=SimpleNamespace(to_dict=lambda: paused), checkpoint=CHECKPOINT)
    runs._done("f" * 32, result, None)
    record = runs.store.get("f" * 32)
    assert record.status == "cancelled" and record.pending is None and not record.cancel_requested and record.lease_owner is None
    assert record.envelope["stopped_reason"] == "cancelled" and record.envelope["messages"] == CHECKPOINT["added"]
    assert [kind for _, kind, _ in runs.store.events("f" * 32, 0)] == ["run_completed"]


def test_keys_marked_busy_from_a_result_thread_survive_the_ticks_pruning(runs):
    # A run refused a slot (429) is requeued by a thread (``_off``) while the tick's thread prunes
    # the busy keys: no "dictionary changed size during iteration", no mark lost.
    runs._busy.update({f"idle-{i}": time.time() + 60 for i in range(200_000)})  # a long prune, to meet the other thread
    runs.store.create(_record("9" * 32, "queued"))
    local = _Local(recorder=SimpleNamespace(lost=False, checkpoint=None))
    refused = AgentRequestError("no slot", status=429)
    stop, marked, errors = threading.Event(), [], []

    def requeue() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            runs._stopped(_record("9" * 32, "running", owner=f"busy-{i}"), local, refused)
            marked.append((f"busy-{i}", time.time()))

    thread = threading.Thread(target=requeue)
    thread.start()
    try:
        for _ in range(20):
            runs._tick_store(time.time(), [], 10**6)  # no free slot: nothing is claimed
    except RuntimeError as exc:
        errors.append(exc)
    finally:
        stop.set()
        thread.join()
    live = {owner for owner, at in marked if at > time.time() - 0.5}  # marks last a second at least
    assert not errors and live and live <= set(runs._busy)


async def _tick(runs: DurableRuns) -> None:
    await runs._tick(time.time())
    await asyncio.sleep(0)


async def _decide(runs: DurableRuns, run_id: str, decisions: dict) -> RunRecord:
    record = await runs.decide(runs.store.get(run_id), decisions)
    runs._loop_task.cancel()
    return record
