"""JSON bodies whose shape costs more to parse than their size says, refused first.

FastAPI parses a JSON body in full before validation can refuse it, and the
standard library's parser builds every key and item first, so a body of many
small keys costs far more CPU than one string of the same size. The JSON
endpoints take an object of a few strings (`{"image": "<base64>"}`), and
base64 holds neither `,` nor `:`, so a body with more of those separators than
such an object can hold is refused by counting them, which costs a pass over
the bytes. This is FastAPI's documented way to change how a route reads its
request (a custom `APIRoute` and `Request`), not a parser of our own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

# `{"image": "data:image/png;base64,..."}` has 2 colons and 1 comma; a few more
# keys (each refused by name) stay well below.
MAX_JSON_SEPARATORS = 64


class BoundedJSONRequest(Request):
    """A request whose JSON body is refused, unparsed, above MAX_JSON_SEPARATORS."""

    async def json(self) -> Any:
        """The parsed body, or a 422 naming the count, the limit and the fix."""
        body = await self.body()
        separators = body.count(b",") + body.count(b":")
        if separators > MAX_JSON_SEPARATORS:
            raise HTTPException(
                status_code=422,
                detail=(
                    f"JSON body has {separators} ',' and ':' separators, above the "
                    f"limit of {MAX_JSON_SEPARATORS} for {self.url.path}; send one "
                    "object {'image': '<base64 PNG or JPEG, or a data URL>'}"
                ),
            )
        return await super().json()


class BoundedJSONRoute(APIRoute):
    """A route that reads its request as a BoundedJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given the bounded request."""
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(BoundedJSONRequest(request.scope, request.receive))

        return bounded
