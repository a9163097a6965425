"""The JSON API under schemathesis: every operation of the OpenAPI document, with data that
fits the schema and data that does not, as each role and anonymously, in-process.  No answer
may be a 5xx, and every answer must match what the document says (status, media type, body).

The number of examples per operation is bounded (``PSCS_FUZZ_EXAMPLES``, default below) so the
run stays short in CI; raise it locally to search harder."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pscs.runtime import Runtime
from pscs.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.test_retention_sweeper import add_cameras
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

ROLES = ("operator", "investigator", "supervisor", "records_commander", "auditor", "admin")
EXAMPLES = int(os.environ.get("PSCS_FUZZ_EXAMPLES", "10"))
# Values past what a database integer or the calendar holds: the edge must refuse them (422).
EDGES = {
    "integer": (2**63, -(2**63) - 1, 2**64),
    "date-time": ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z"),
    "date": ("9999-12-31", "0001-01-01"),
}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _session_for(app, client, csrf: str | None) -> ASGIClient:  # noqa: ANN001
    """A schemathesis client on the app carrying a signed-in browser's cookies and CSRF token."""
    session = ASGIClient(app)
    for name, value in client.cookies.items():
        session.cookies.set(name, value)
    session.headers["accept"] = "application/json"
    if csrf:
        session.headers["x-csrf-token"] = csrf
    return session


def _fuzz_operation(operation, session: requests.Session) -> Callable[[], None]:  # noqa: ANN001
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    with contextlib.suppress(Exception):  # an operation with nothing to negate has no negative cases
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # noqa: ANN001
        response = case.call(session=session)
        case.validate_response(response, checks=CHECKS)

    return run


def _kind(schema: dict) -> str | None:
    """``integer``, ``date-time`` or ``date`` for a parameter of that type (or nullable), else None."""
    for option in (schema, *schema.get("anyOf", ())):
        if option.get("type") == "integer":
            return "integer"
        if option.get("format") in ("date-time", "date"):
            return option["format"]
    return None


def _edge_cases(schema, document: dict) -> list:  # noqa: ANN001
    """One case per integer or time parameter of every operation, set past the range."""
    cases = []
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            operation = schema[path][method]
            params = spec.get("parameters", [])
            plain = {p["name"]: "1" for p in params if p["in"] == "path"}
            for param in params:
                kind = _kind(param["schema"])
                for value in EDGES.get(kind or "", ()):
                    where = "path_parameters" if param["in"] == "path" else "query"
                    given = {"path_parameters": dict(plain), "query": {}}
                    given[where][param["name"]] = str(value)
                    cases.append((operation, param["name"], operation.Case(**given)))
    return cases


def test_every_integer_in_the_api_document_is_bounded(sqlite_runtime: Runtime) -> None:
    """Ids, counts and epoch milliseconds all declare a range that a database integer holds."""
    unbounded = []

    def walk(node, where: str) -> None:  # noqa: ANN001
        if isinstance(node, dict):
            if node.get("type") == "integer" and not (
                node.get("minimum", -(2**64)) >= -(2**63) and node.get("maximum", 2**64) <= 2**63 - 1
            ):
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(create_app(sqlite_runtime).openapi(), "")
    assert not unbounded


@pytest.mark.slow
def test_api_fuzz_as_every_role_and_anonymously(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    add_cameras(rt, 2)
    app = create_app(rt)
    sessions = {"anonymous": _session_for(app, client_for(rt), None)}
    for role in ROLES:
        if role == "admin":
            client = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
        else:
            make_user(rt, f"fuzz-{role.replace('_', '-')}", [role])
            client = sign_in(client_for(rt), f"fuzz-{role.replace('_', '-')}")
        sessions[role] = _session_for(app, client, csrf_of(client))
        if role in rt.profile.video_roles:  # past U1, so the video routes are reached too
            purpose = client.get("/api/v1/purposes").json()["purposes"][0]["id"]
            opened = client.post(
                "/api/v1/purpose-sessions",
                json={"purpose": purpose, "case_number": "FUZZ-1", "incident_number": "FUZZ-1"},
                headers={"x-csrf-token": csrf_of(client)},
            )
            assert opened.status_code == 201, opened.text
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    failures = []
    for who, session in sessions.items():
        for operation in operations:
            try:
                _fuzz_operation(operation, session)()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected: one run names every failure
                failures.append(f"{who} {operation.label}: {exc}")
    # Past the range, every integer and time parameter, as a role that may call most routes.
    for operation, name, case in _edge_cases(schema, app.openapi()):
        response = case.call(session=sessions["records_commander"])
        case.validate_response(response, checks=CHECKS)
        if response.status_code == 422:
            assert name in response.text, (operation.label, name, response.text)
    assert not failures, "\n\n".join(failures)
