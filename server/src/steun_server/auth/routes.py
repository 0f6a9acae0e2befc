"""REST routes for signing in, TOTP and user management (``/api/auth/*``, ``/api/users*``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from .. import audit as events
from ..errors import ApiError, bad_request, conflict, forbidden
from ..web import (
    AUDIT,
    AUTH,
    DB,
    RouteTable,
    clear_session_cookie,
    current_user,
    json_response,
    read_json,
    set_csrf_cookie,
    set_session_cookie,
)
from . import totp
from . import users as user_queries
from .passwords import verify_password
from .roles import Role
from .service import client_address

routes = RouteTable()

Text = Annotated[str, msgspec.Meta(max_length=256)]
Password = Annotated[str, msgspec.Meta(max_length=1024)]
Code = Annotated[str, msgspec.Meta(max_length=64)]
RoleName = Literal["technician", "specialist", "admin"]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class UserOut(msgspec.Struct, kw_only=True):
    id: int
    username: str
    display_name: str
    role: RoleName
    totp_enabled: bool
    disabled: bool = False


class UserReply(msgspec.Struct, kw_only=True):
    user: UserOut


class LoginRequest(Strict):
    username: Text
    password: Password
    totp_code: Code | None = None
    recovery_code: Code | None = None


class TotpEnrollReply(msgspec.Struct, kw_only=True):
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpVerifyRequest(Strict):
    code: Code


class RecoveryCodesReply(msgspec.Struct, kw_only=True):
    recovery_codes: list[str]


class TotpDisableRequest(Strict):
    password: Password
    code: Code


class PasswordChangeRequest(Strict):
    current_password: Password
    new_password: Password


class Empty(msgspec.Struct):
    pass


class UserList(msgspec.Struct, kw_only=True):
    users: list[UserOut]


class CreateUserRequest(Strict):
    username: Text
    display_name: Text = ""
    role: RoleName = "technician"


class CreatedUser(msgspec.Struct, kw_only=True):
    user: UserOut
    #: shown once; the user changes it after signing in
    password: str


class UpdateUserRequest(Strict):
    role: RoleName | None = None
    display_name: Text | None = None
    disabled: bool | None = None


@routes.post(
    "/api/auth/login",
    public=True,
    request=LoginRequest,
    response=UserReply,
    errors=(429,),
    summary="Sign in with password (and TOTP code or recovery code when enabled)",
    tags=("auth",),
)
async def login(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, LoginRequest)
    auth = request.app[AUTH]
    result = await auth.login(
        username=body.username,
        password=body.password,
        totp_code=body.totp_code,
        recovery_code=body.recovery_code,
        source=client_address(request),
        user_agent=request.headers.get("User-Agent", ""),
    )
    response = json_response({"user": result.principal.public()})
    set_session_cookie(response, result.token)
    set_csrf_cookie(response)  # a fresh CSRF token per session
    return response


@routes.post(
    "/api/auth/logout", permission=Role.TECHNICIAN, response=Empty, summary="End this session", tags=("auth",)
)
async def logout(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    await request.app[AUTH].end_session(user.session_hash)
    await request.app[AUDIT].emit(events.AUTH_LOGOUT, actor=user.username, source=client_address(request))
    response = json_response({})
    clear_session_cookie(response)
    return response


@routes.get(
    "/api/auth/me",
    permission=Role.TECHNICIAN,
    response=UserReply,
    summary="The signed-in user (also hands out the CSRF cookie, even when signed out)",
    tags=("auth",),
)
async def me(request: web.Request) -> web.StreamResponse:
    return json_response({"user": current_user(request).public()})


@routes.post(
    "/api/auth/password",
    permission=Role.TECHNICIAN,
    request=PasswordChangeRequest,
    response=Empty,
    summary="Change one's own password (other sessions of the user end)",
    tags=("auth",),
)
async def change_password(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    body = await read_json(request, PasswordChangeRequest)
    db = request.app[DB]
    async with db.connect() as conn:
        row = await user_queries.get_row(conn, user.user_id)
    if row is None or not await verify_password(row.password_hash, body.current_password):
        raise forbidden("the current password is wrong", code="invalid_credentials")
    async with db.begin() as conn:
        await user_queries.set_password(conn, user.user_id, body.new_password)
    await request.app[AUTH].end_user_sessions(user.user_id, keep=user.session_hash)
    await request.app[AUDIT].emit(
        "auth.password_changed", actor=user.username, source=client_address(request)
    )
    return json_response({})


@routes.post(
    "/api/auth/totp/enroll",
    permission=Role.TECHNICIAN,
    response=TotpEnrollReply,
    summary="Start TOTP enrolment: a new secret, its otpauth URI and a QR code (not active until verified)",
    tags=("auth",),
)
async def totp_enroll(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    if user.totp_enabled:
        raise conflict("two-factor sign-in is on already; disable it first", code="totp_enabled")
    secret = totp.new_secret()
    async with request.app[DB].begin() as conn:
        await user_queries.set_pending_totp(conn, user.user_id, secret)
    uri = totp.provisioning_uri(secret, user.username, "Steun")
    return json_response({"secret": secret, "otpauth_uri": uri, "qr_svg": totp.qr_svg(uri)})


@routes.post(
    "/api/auth/totp/verify",
    permission=Role.TECHNICIAN,
    request=TotpVerifyRequest,
    response=RecoveryCodesReply,
    summary="Confirm TOTP enrolment with a code; returns 10 single-use recovery codes",
    tags=("auth",),
)
async def totp_verify(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    body = await read_json(request, TotpVerifyRequest)
    db = request.app[DB]
    async with db.connect() as conn:
        row = await user_queries.get_row(conn, user.user_id)
    if row is None or row.totp_pending_secret is None:
        raise conflict("start with /api/auth/totp/enroll", code="totp_not_enrolling")
    step = totp.match_code(row.totp_pending_secret, body.code, request.app[AUTH].now(), None)
    if step is None:
        raise bad_request("the code does not match; check the time on the phone", code="invalid_code")
    codes = totp.generate_recovery_codes()
    async with db.begin() as conn:
        await user_queries.enable_totp(conn, user.user_id, row.totp_pending_secret, step, codes)
    await request.app[AUDIT].emit(
        events.AUTH_TOTP_ENABLED, actor=user.username, source=client_address(request)
    )
    return json_response({"recovery_codes": codes})


@routes.post(
    "/api/auth/totp/disable",
    permission=Role.TECHNICIAN,
    request=TotpDisableRequest,
    response=Empty,
    summary="Turn TOTP off (needs the password and a current code)",
    tags=("auth",),
)
async def totp_disable(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    body = await read_json(request, TotpDisableRequest)
    db = request.app[DB]
    auth = request.app[AUTH]
    async with db.connect() as conn:
        row = await user_queries.get_row(conn, user.user_id)
    if row is None or row.totp_secret is None:
        raise conflict("two-factor sign-in is not on", code="totp_not_enabled")
    auth.check_throttle(user.username, client_address(request))
    step = totp.match_code(row.totp_secret, body.code, auth.now(), row.totp_last_step)
    ok = await verify_password(row.password_hash, body.password) and step is not None
    if ok and step is not None:
        async with db.begin() as conn:
            ok = await user_queries.claim_totp_step(conn, user.user_id, step)
    if not ok:
        await auth.record_failure(user.username, client_address(request), "totp_disable")
        raise forbidden("the password or the code is wrong", code="invalid_credentials")
    async with db.begin() as conn:
        await user_queries.disable_totp(conn, user.user_id)
    await request.app[AUDIT].emit(
        events.AUTH_TOTP_DISABLED, actor=user.username, source=client_address(request)
    )
    return json_response({})


@routes.get(
    "/api/users", permission=Role.ADMIN, response=UserList, summary="List user accounts", tags=("users",)
)
async def list_users(request: web.Request) -> web.StreamResponse:
    async with request.app[DB].connect() as conn:
        found = await user_queries.list_users(conn)
    return json_response({"users": [u.public() for u in found]})


@routes.post(
    "/api/users",
    permission=Role.ADMIN,
    request=CreateUserRequest,
    response=CreatedUser,
    status=201,
    errors=(409,),
    summary="Create a user account; the random password is shown once",
    tags=("users",),
)
async def create_user(request: web.Request) -> web.StreamResponse:
    actor = current_user(request)
    body = await read_json(request, CreateUserRequest)
    async with request.app[DB].begin() as conn:
        user, password = await user_queries.create_user(
            conn, body.username, role=Role(body.role), display_name=body.display_name
        )
    await request.app[AUDIT].emit(
        events.USER_CREATED,
        actor=actor.username,
        source=client_address(request),
        data={"user_id": user.id, "username": user.username, "role": str(user.role)},
    )
    return json_response({"user": user.public(), "password": password}, status=201)


@routes.patch(
    "/api/users/{id}",
    permission=Role.ADMIN,
    request=UpdateUserRequest,
    response=UserReply,
    errors=(404, 409),
    summary="Change a user's role, display name or disabled flag",
    tags=("users",),
)
async def update_user(request: web.Request) -> web.StreamResponse:
    actor = current_user(request)
    try:
        user_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such user") from None
    body = await read_json(request, UpdateUserRequest)
    async with request.app[DB].begin() as conn:
        before, after = await user_queries.update_user(
            conn,
            user_id,
            role=Role(body.role) if body.role is not None else None,
            display_name=body.display_name,
            disabled=body.disabled,
        )
    if before.role != after.role:
        await request.app[AUDIT].emit(
            events.USER_ROLE_CHANGED,
            actor=actor.username,
            source=client_address(request),
            data={
                "user_id": after.id,
                "username": after.username,
                "from": str(before.role),
                "to": str(after.role),
            },
        )
    if before.disabled != after.disabled:
        await request.app[AUDIT].emit(
            "user.disabled" if after.disabled else "user.enabled",
            actor=actor.username,
            source=client_address(request),
            data={"user_id": after.id, "username": after.username},
        )
        if after.disabled:
            await request.app[AUTH].end_user_sessions(after.id)
    return json_response({"user": after.public()})
