"""POST /agent/run: a small tool-using agent loop over the proxy's own models.

The public surface: :class:`AgentRunRequest` (the request body), :func:`resolve` (request + config →
:class:`RunSpec`), :func:`run_agent` (the loop, one entry point), :class:`Envelope` /
:class:`RunMetrics` (the response), and the exceptions :class:`AgentRequestError` (a 4xx) and
:class:`ModelCallError`. HTTP concerns live in :mod:`proxy_ext.agent.routes`; validation against the
running proxy and traces in :mod:`proxy_ext.agent.service`.
"""

from proxy_ext.agent.envelope import Envelope, RunMetrics, StoppedReason
from proxy_ext.agent.errors import AgentRequestError, ModelCallError
from proxy_ext.agent.request import AgentRunRequest, RunSpec, resolve
from proxy_ext.agent.runner import RunOutcome, RunSettings, run_agent

__all__ = [
    "AgentRequestError",
    "AgentRunRequest",
    "Envelope",
    "ModelCallError",
    "RunMetrics",
    "RunOutcome",
    "RunSettings",
    "RunSpec",
    "StoppedReason",
    "resolve",
    "run_agent",
]
