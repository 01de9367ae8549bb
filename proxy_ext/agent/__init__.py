"""POST /agent/run: a small tool-using agent loop over the proxy's own models.

The public surface: :func:`facade.start` (the one way to start a run, used by every entry point)
with :class:`Caller` and :class:`AgentRun`; :class:`AgentRunRequest` (the request body),
:func:`resolve` (request + config → :class:`RunSpec` with its :class:`Limits`); :func:`run_agent`
(the loop) returning a :class:`RunResult` (:class:`Envelope` + :class:`Usage`); the typed run
events in :mod:`proxy_ext.agent.events`. Exceptions are in :mod:`proxy_ext.exceptions`. HTTP
concerns live in :mod:`proxy_ext.agent.routes`; validation against the running proxy in
:mod:`proxy_ext.agent.service`.
"""

from proxy_ext.agent.envelope import Envelope, RunMetrics, StoppedReason
from proxy_ext.agent.errors import AgentRequestError, ModelCallError
from proxy_ext.agent.events import EventStream, RunEvent
from proxy_ext.agent.facade import AgentRun, Caller, start
from proxy_ext.agent.request import AgentRunRequest, RunSpec, resolve
from proxy_ext.agent.runner import RunResult, RunSettings, run_agent
from proxy_ext.agent.usage import Limits, Usage

__all__ = [
    "AgentRequestError",
    "AgentRun",
    "AgentRunRequest",
    "Caller",
    "Envelope",
    "EventStream",
    "Limits",
    "ModelCallError",
    "RunEvent",
    "RunMetrics",
    "RunResult",
    "RunSettings",
    "RunSpec",
    "StoppedReason",
    "Usage",
    "resolve",
    "run_agent",
    "start",
]
