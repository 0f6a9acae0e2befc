"""Fleet REST routes: devices, device groups and enrollment tokens (``/api/devices``, ``/api/groups``, …)."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from aiohttp import web
from steun_protocol.console import MAX_DEVICES_LISTED, DeviceDetail, DeviceList
from steun_protocol.messages import DeviceId

from ..auth.roles import Role
from ..auth.service import client_address
from ..errors import ApiError, bad_request, conflict, not_found
from ..web import RouteTable, current_user, json_response, read_json, read_query
from . import store, views
from .agent_ws import agent_websocket
from .enrollment import (
    DEFAULT_TTL,
    MAX_TTL,
    MIN_TTL,
    EnrollmentError,
    create_enrollment_token,
    enrollment_command,
)
from .service import FLEET

routes = RouteTable()

GROUP_CREATED = "group.created"

GroupName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
]
SearchText = Annotated[str, msgspec.Meta(max_length=256)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class DevicesQuery(Strict):
    #: Words that must each match the hostname, OS, group or id (case-insensitive).
    q: SearchText = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_DEVICES_LISTED)] = MAX_DEVICES_LISTED


class GroupOut(msgspec.Struct, kw_only=True):
    name: str
    description: str
    created_at: float
    device_count: int


class GroupList(msgspec.Struct, kw_only=True):
    groups: list[GroupOut]


class GroupCreate(Strict):
    name: GroupName
    description: Annotated[str, msgspec.Meta(max_length=256)] = ""


class TokenCreate(Strict):
    group: GroupName = "default"
    ttl_seconds: Annotated[int, msgspec.Meta(ge=int(MIN_TTL), le=int(MAX_TTL))] = int(DEFAULT_TTL)


class TokenCreated(msgspec.Struct, kw_only=True):
    #: ``st1.<secret>.<spki-sha256>.<org-public-key>``: shown once, only its hash is stored
    token: str
    expires_at: float
    #: the command to run on the machine
    command: str


def _group_out(group: store.GroupRecord) -> GroupOut:
    return GroupOut(
        name=group.name,
        description=group.description,
        created_at=group.created_at,
        device_count=group.device_count,
    )


@routes.get(
    "/agent/ws",
    public=True,
    websocket=True,
    summary="Agent control-plane websocket (hello, enroll/auth, heartbeat, inventory)",
    description="Agents only: a request carrying an Origin header is refused. See docs/protocol.md.",
    tags=("agents",),
)
async def agent_ws(request: web.Request) -> web.StreamResponse:
    return await agent_websocket(request)


@routes.get(
    "/api/devices",
    permission=Role.TECHNICIAN,
    query=DevicesQuery,
    response=DeviceList,
    summary="Enrolled devices, optionally filtered by a search",
    tags=("devices",),
)
async def list_devices(request: web.Request) -> web.StreamResponse:
    query = read_query(request, DevicesQuery)
    devices = await views.summaries(request.app[FLEET], query=query.q, limit=query.limit)
    return json_response(DeviceList(devices=devices))


@routes.get(
    "/api/devices/{device_id}",
    permission=Role.TECHNICIAN,
    response=DeviceDetail,
    errors=(404,),
    summary="One device with its inventory and live metrics",
    tags=("devices",),
)
async def get_device(request: web.Request) -> web.StreamResponse:
    device_id = request.match_info["device_id"]
    try:
        msgspec.convert(device_id, DeviceId)
    except msgspec.ValidationError:
        raise not_found("no such device") from None
    detail = await views.detail(request.app[FLEET], device_id)
    if detail is None:
        raise not_found("no such device")
    return json_response(detail)


@routes.get(
    "/api/groups",
    permission=Role.TECHNICIAN,
    response=GroupList,
    summary="Device groups with their number of devices",
    tags=("devices",),
)
async def list_groups(request: web.Request) -> web.StreamResponse:
    groups = await store.list_groups(request.app[FLEET].db)
    return json_response(GroupList(groups=[_group_out(g) for g in groups]))


@routes.post(
    "/api/groups",
    permission=Role.ADMIN,
    request=GroupCreate,
    response=GroupOut,
    status=201,
    errors=(409,),
    summary="Create a device group",
    tags=("devices",),
)
async def create_group(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, GroupCreate)
    service = request.app[FLEET]
    name = body.name.strip()
    if name != body.name:
        raise bad_request("a group name may not start or end with spaces")
    try:
        group = await store.create_group(service.db, name, body.description, now=time.time())
    except store.FleetStoreError as exc:
        raise conflict(exc.message) from None
    user = current_user(request)
    await service.audit.emit(
        GROUP_CREATED, actor=user.username, source=client_address(request), data={"group": group.name}
    )
    return json_response(_group_out(group), status=201)


@routes.post(
    "/api/enrollment-tokens",
    permission=Role.ADMIN,
    request=TokenCreate,
    response=TokenCreated,
    status=201,
    errors=(404,),
    summary="Create a single-use enrollment token for a device group",
    description="Shown once; only its SHA-256 is stored. `command` is what to run on the machine.",
    tags=("devices",),
)
async def create_token(request: web.Request) -> web.StreamResponse:
    body = await read_json(request, TokenCreate)
    service = request.app[FLEET]
    user = current_user(request)
    try:
        token, expires_at = await create_enrollment_token(
            service.db,
            service.keys,
            group=body.group,
            ttl=float(body.ttl_seconds),
            created_by=user.user_id,
            audit=service.audit,
            actor=user.username,
        )
    except EnrollmentError as exc:
        raise ApiError(404 if exc.code == "not_found" else 400, exc.code, exc.message) from None
    created = TokenCreated(
        token=str(token), expires_at=expires_at, command=enrollment_command(service.config, token)
    )
    return json_response(created, status=201)
