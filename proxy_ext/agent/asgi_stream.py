"""An httpx transport that calls an ASGI app in process and streams its response body.

``httpx.ASGITransport`` waits for the whole body before it returns, which is right for the agent's
ordinary model calls. Streamed model calls (used when the caller is streaming the answer) need the
chunks as the app sends them; this transport runs the app in a task and hands each body chunk to
the reader through a queue. Closing the response early (the caller went away) cancels the app's
task, which cancels the model call inside the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["StreamingASGITransport"]


class _QueueStream(httpx.AsyncByteStream):
    def __init__(self, queue: asyncio.Queue[bytes | None], task: asyncio.Task[None], disconnected: asyncio.Event) -> None:
        self.queue = queue
        self.task = task
        self.disconnected = disconnected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self.disconnected.set()
        if not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Call ``app`` in process; the response body streams as the app produces it."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw], "scheme": request.url.scheme,
            "path": request.url.path, "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query, "server": (request.url.host, request.url.port or 80),
            "client": self.client, "root_path": "",
        }
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        started = asyncio.Event()
        disconnected = asyncio.Event()
        head: dict[str, Any] = {"status": 500, "headers": []}
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                head["status"], head["headers"] = message["status"], message.get("headers", [])
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await queue.put(message["body"])
                if not message.get("more_body", False):
                    await queue.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception:  # an escaping exception is a 500 for the reader, as in ASGITransport
                pass
            finally:
                started.set()
                await queue.put(None)

        task = asyncio.create_task(run(), name="proxy_ext.model_stream")
        await started.wait()
        return httpx.Response(head["status"], headers=head["headers"], stream=_QueueStream(queue, task, disconnected), request=request)
