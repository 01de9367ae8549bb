"""A LiteLLM callback for tests: one JSON line per successful call with the key alias and cost, in
``$SPEND_RECORD_PATH`` — shows which identity each agent model call was charged to."""

from __future__ import annotations

import json
import os

from litellm.integrations.custom_logger import CustomLogger


class SpendRecorder(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # noqa: ANN001
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        record = {
            "model": kwargs.get("model_group") or metadata.get("model_group") or kwargs.get("model"),
            "key_alias": metadata.get("user_api_key_alias"),
            "key_hash": metadata.get("user_api_key_hash") or metadata.get("user_api_key"),
            "cost": kwargs.get("response_cost"),
            # What LiteLLM's spend logs are built from (compared field by field between an agent
            # turn and a direct call in tests/test_agent.py).
            "payload": kwargs.get("standard_logging_object"),
        }
        # One write per line (a buffered file splits long lines): readers never see half a record.
        fd = os.open(os.environ["SPEND_RECORD_PATH"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record, default=str) + "\n").encode())
        finally:
            os.close(fd)


recorder = SpendRecorder()
