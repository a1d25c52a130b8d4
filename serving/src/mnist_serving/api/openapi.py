"""The OpenAPI document: readable operation ids, X-Request-ID, links, `file`.

FastAPI builds the document from the routes; three things it cannot see are
added here. The X-Request-ID header is handled by the middleware (it is echoed
on every response and written to the audit log), so no route declares it. The
links say that a prediction's `request_id` can be sent on as the next call's
X-Request-ID, which is how a client correlates a retry or a follow-up; client
generators and schemathesis's stateful tests follow them. And multipart
/predict requires its `file`, which FastAPI sees as optional because the same
route also takes the raw image as the body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from mnist_serving.core.middleware import REQUEST_ID_PATTERN

REQUEST_ID_HEADER: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Your id for this request (echoed back and written to the "
    "audit log); a new one is made when it is absent or not of this form.",
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
}
PREDICT_OPERATIONS = (
    "predict",
    "predict_drawing",
    "predict_batch",
    "predict_number",
    "predict_number_drawing",
)


def operation_id(route: APIRoute) -> str:
    """The route's function name: `predict`, not `predict_predict_post`."""
    return route.name


def _links() -> dict[str, Any]:
    """A link from a prediction to each predict operation, carrying request_id."""
    return {
        f"correlate_{target}": {
            "operationId": target,
            "parameters": {"header.X-Request-ID": "$response.body#/request_id"},
            "description": "Send this prediction's request_id as X-Request-ID.",
        }
        for target in PREDICT_OPERATIONS
    }


def _require_file(doc: dict[str, Any]) -> None:
    """Multipart /predict and /predict-number require `file`, as the routes do.

    FastAPI sees an optional parameter, as the raw-image body has no `file`.
    """
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("Body_predict", "Body_predict_number"):
        body = schemas.get(name)
        if body is None:
            continue
        file = body["properties"]["file"]
        body["properties"]["file"] = {
            "type": "string",
            "format": "binary",
            "description": file.get("description", ""),
        }
        body["required"] = ["file"]


def _document(app: FastAPI) -> dict[str, Any]:
    """Build FastAPI's document and add the header, the links and `file`."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _require_file(doc)
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            operation.setdefault("parameters", []).append(dict(REQUEST_ID_HEADER))
            if operation.get("operationId") in PREDICT_OPERATIONS:
                ok = operation["responses"]["200"]
                ok["links"] = _links()
    return doc


def install(app: FastAPI) -> None:
    """Serve the augmented document at /openapi.json (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
