"""Sign-in (password, then TOTP with enrolment on first use), password change, the U3
acknowledgement, and sign-out."""

from __future__ import annotations

import secrets
from typing import Annotated

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from pscs.auth import service as auth
from pscs.errors import AuthenticationFailed, PscsError
from pscs.policy.decisions import Decision
from pscs.policy.profile import policy_text
from pscs.purposes import service as purposes
from pscs.web import pages
from pscs.web.access import (
    SESSION_COOKIE,
    anonymous_actor,
    principal_of,
    public,
    runtime_of,
    second_factor,
    signed_in_before_gates,
)

router = APIRouter()
LOGIN_CSRF_COOKIE = "pscs_login_csrf"


def _cookie_secure(request: Request) -> bool:
    # Secure whenever the client came over TLS (directly, or as a trusted proxy reports);
    # the setting can only add the flag.  A browser would not send a Secure cookie back
    # over plain HTTP, so forcing it there would only break sign-in.
    return request.url.scheme == "https" or bool(runtime_of(request).settings.cookie_secure)


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path="/",
        max_age=runtime_of(request).profile.security.session_max_hours * 3600,
    )


@router.get("/login", include_in_schema=False)
@public
def login_page(request: Request, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = pages.render(request, "login.html", {"login_csrf": token, "error": error})
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_cookie_secure(request), path="/login"
    )
    return response


@router.post("/login", include_in_schema=False)
@public
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    login_csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    rt = runtime_of(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, login_csrf):
        raise rt.audit.refusal(
            "auth.login",
            anonymous_actor(request),
            Decision.deny("CJIS-5.10", "the sign-in form is stale or forged (CSRF check failed); reload the page"),
            object_type="user",
            details={"username": username.strip().lower()[:64]},
        )
    try:
        new = auth.sign_in_password(rt, anonymous_actor(request), username.strip().lower(), password)
    except AuthenticationFailed as exc:
        return pages.render(
            request,
            "login.html",
            {"login_csrf": login_csrf, "error": exc.message, "username": username},
            status_code=401,
        )
    response = RedirectResponse("/mfa", status_code=303)
    _set_session_cookie(request, response, new.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get("/mfa", include_in_schema=False)
@second_factor
def mfa_page(request: Request) -> Response:
    rt = runtime_of(request)
    view = request.state.user
    context: dict[str, object] = {"enrolling": not view.mfa_enrolled}
    if not view.mfa_enrolled:
        secret, uri = auth.begin_enrolment(rt, view.user_id)
        context |= {"secret": secret, "otpauth_uri": uri, "qr_svg": segno.make(uri, error="m").svg_data_uri(scale=4)}
    return pages.render(request, "mfa.html", context)


@router.post("/mfa", include_in_schema=False)
@second_factor
def mfa_submit(request: Request, code: Annotated[str, Form(max_length=12)]) -> Response:
    rt = runtime_of(request)
    view = request.state.user
    try:
        rotated = auth.sign_in_second_factor(rt, request.state.actor, view.session_id, code)
    except AuthenticationFailed as exc:
        try:
            auth.resume_session(rt, request.cookies.get(SESSION_COOKIE, ""), touch=False)
        except AuthenticationFailed:
            return RedirectResponse("/login?error=locked", status_code=303)
        context: dict[str, object] = {"enrolling": not view.mfa_enrolled, "error": exc.message}
        if not view.mfa_enrolled:
            secret, uri = auth.begin_enrolment(rt, view.user_id)
            context |= {
                "secret": secret,
                "otpauth_uri": uri,
                "qr_svg": segno.make(uri, error="m").svg_data_uri(scale=4),
            }
        return pages.render(request, "mfa.html", context, status_code=401)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(request, response, rotated.token)  # the pre-MFA token no longer works
    return response


@router.get("/account/password", include_in_schema=False)
@signed_in_before_gates
def password_page(request: Request) -> Response:
    return pages.render(request, "password.html")


@router.post("/account/password", include_in_schema=False)
@signed_in_before_gates
def password_submit(
    request: Request,
    current_password: Annotated[str, Form(max_length=256)],
    new_password: Annotated[str, Form(max_length=256)],
    confirm_password: Annotated[str, Form(max_length=256)],
) -> Response:
    rt = runtime_of(request)
    try:
        if new_password != confirm_password:
            raise PscsError("the two new passwords differ")
        auth.change_password(
            rt,
            request.state.actor,
            request.state.user.user_id,
            current_password,
            new_password,
            keep_session=request.state.user.session_id,
        )
    except PscsError as exc:
        return pages.render(request, "password.html", {"error": exc.message}, status_code=exc.status)
    return RedirectResponse("/", status_code=303)


@router.get("/acknowledge", include_in_schema=False)
@signed_in_before_gates
def acknowledge_page(request: Request) -> Response:
    rt = runtime_of(request)
    status = auth.acknowledgement_status(rt, request.state.user.user_id)
    return pages.render(
        request,
        "acknowledge.html",
        {
            "policy_text": policy_text(rt.profile, rt.settings.policy_profile),
            "reason": status.reason,
            "profile": rt.profile,
        },
    )


@router.post("/acknowledge", include_in_schema=False)
@signed_in_before_gates
def acknowledge_submit(
    request: Request,
    typed_name: Annotated[str, Form(max_length=200)],
    training_completed: Annotated[bool, Form()] = False,
) -> Response:
    rt = runtime_of(request)
    try:
        auth.acknowledge_policy(
            rt,
            request.state.actor,
            request.state.user.user_id,
            typed_name=typed_name,
            training_completed=training_completed,
        )
    except PscsError as exc:
        return pages.render(
            request,
            "acknowledge.html",
            {
                "policy_text": policy_text(rt.profile, rt.settings.policy_profile),
                "error": exc.message,
                "profile": rt.profile,
                "reason": "",
            },
            status_code=exc.status,
        )
    return RedirectResponse("/", status_code=303)


@router.post("/logout", include_in_schema=False)
@signed_in_before_gates
def logout(request: Request) -> Response:
    rt = runtime_of(request)
    # A purpose declared in this sign-in ends with it, and its end is audited (U1).
    purposes.end_session(rt, principal_of(request), "signed out")
    auth.end_session(rt, request.state.actor, request.state.user.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
