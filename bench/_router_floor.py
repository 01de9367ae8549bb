"""The floor under a model turn: LiteLLM's ``Router.acompletion`` alone, in a process of its own
(no proxy, no auth, no hooks), against the fake upstream at ``sys.argv[1]``. Prints CPU ms per call
(process time: LiteLLM's logging threads included), sequential and 100 at a time."""

from __future__ import annotations

import asyncio
import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


async def _measure(base_url: str) -> None:
    from litellm import Router

    router = Router(model_list=[{"model_name": "fake/floor",
                                 "litellm_params": {"model": "openai/bench-chat", "api_base": base_url, "api_key": "sk-fake"}}])
    messages = [{"role": "user", "content": "go"}]
    for _ in range(30):
        await router.acompletion(model="fake/floor", messages=messages)
    results = []
    for concurrent in (1, 100):
        calls = 400
        started = time.process_time()
        for _ in range(calls // concurrent):
            await asyncio.gather(*(router.acompletion(model="fake/floor", messages=messages) for _ in range(concurrent)))
        results.append((time.process_time() - started) * 1000 / calls)
        await asyncio.sleep(0.5)  # logging callbacks of the last calls
    print(f"{results[0]:.2f} {results[1]:.2f}")


if __name__ == "__main__":
    asyncio.run(_measure(sys.argv[1]))
