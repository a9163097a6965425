"""The OpenAPI document as the API really answers: besides each route's own success, every
operation may answer with pscs's error body (see ``pscs.web.app``), not FastAPI's default
validation shape, so a client (or schemathesis) can rely on the document for refusals too."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Interval
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from pscs.web.defs.common import MAX_INT

# The statuses a refusal takes (pscs.errors), each with what it means to a caller.
ERROR_RESPONSES = {
    "400": "the request cannot be carried out as asked",
    "401": "not signed in, or the sign-in has ended",
    "403": "refused by the access rules or the camera policy (the clause is named)",
    "404": "no such object or page",
    "409": "the object's state does not allow this now",
    "422": "invalid input (each field is named)",
}


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    status: Annotated[int, Interval(ge=400, le=599)]
    code: str
    message: str
    clause: str | None = None
    fields: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's document, built once: FastAPI's, with the error answers of every operation."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error.pop("$defs", {}))
        schemas["ErrorBody"] = error
        answer = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_RESPONSES.items():
                    responses[status] = {"description": description, "content": answer}
        _exact_integer_bounds(document)
        app.openapi_schema = document
    return app.openapi_schema


def _exact_integer_bounds(node: Any) -> None:
    """FastAPI writes the bounds of a body's integers as floats, and 2^63-1 as a float is 2^63,
    one past what pscs accepts: an integer's bounds are written back as the integers meant."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum"):
                if isinstance(node.get(key), float):
                    node[key] = max(-MAX_INT - 1, min(MAX_INT, int(node[key])))
        for value in node.values():
            _exact_integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _exact_integer_bounds(value)


def answers_in(*media_types: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for a success given in other media types than JSON (a CSV
    export, a PNG), so the document names what the route really sends."""
    return {200: {"content": {media: {} for media in media_types}}}
