"""A cap on request bodies, enforced before the application reads them (413, one-line reason).

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is
read up to the limit and refused when it goes over, so no request makes the server hold more than
``limit`` bytes of it. Pure ASGI, so it sits in front of FastAPI's multipart parsing.
"""

from __future__ import annotations

import json


class BodyLimit:
    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                return await _refuse(send, 400, "Content-Length is not a number")
            if too_big:
                return await _refuse(send, 413, self._message(int(declared)))
            return await self.app(scope, receive, send)
        body, more = [], True  # chunked: read it whole, within the limit, then replay it
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.append(message.get("body", b""))
            size += len(body[-1])
            if size > self.limit:
                return await _refuse(send, 413, self._message(size, at_least=True))
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        return (f"request body of {'over ' if at_least else ''}{size:,} bytes; the limit is {self.limit:,} "
                f"(facerec serve --max-upload-mb)")


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
