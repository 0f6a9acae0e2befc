"""The console websocket API (``/api/ws``): typed commands, results and subscription events."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from .diagnostics_console import DIAGNOSTICS_COMMANDS
from .inventory import Inventory, LiveMetrics
from .limits import MAX_TEXT_MESSAGE
from .messages import Api, DeviceId, Payload, Request, ShortText
from .sessionplane import SessionExtend, SessionRequest, SessionStop, SupportCodeCreate

MAX_DEVICES_LISTED = 5000


class DeviceSummary(Payload, frozen=True):
    id: DeviceId
    hostname: ShortText
    os: ShortText
    group: ShortText
    online: bool
    last_seen: float | None
    enrolled_at: float


class DeviceDetail(Payload, frozen=True):
    id: DeviceId
    hostname: ShortText
    os: ShortText
    group: ShortText
    online: bool
    last_seen: float | None
    enrolled_at: float
    inventory: Inventory | None = None
    inventory_updated_at: float | None = None
    metrics: LiveMetrics | None = None


class DeviceList(Payload, frozen=True):
    devices: Annotated[list[DeviceSummary], msgspec.Meta(max_length=MAX_DEVICES_LISTED)]


class DevicesChanged(Payload, frozen=True):
    kind: Literal["upsert", "remove"]
    device: DeviceSummary | None = None
    device_id: DeviceId | None = None


class DeviceChanged(Payload, frozen=True):
    kind: Literal["detail"]
    device: DeviceDetail


class DevicesList(Request, tag="devices/list", frozen=True):
    query: ShortText = ""
    Result: ClassVar[type[Payload]] = DeviceList
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DevicesSubscribe(Request, tag="devices/subscribe", frozen=True):
    Result: ClassVar[type[Payload]] = DeviceList
    Event: ClassVar[type[Payload] | None] = DevicesChanged
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DeviceGet(Request, tag="device/get", frozen=True):
    device_id: DeviceId
    Result: ClassVar[type[Payload]] = DeviceDetail
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class DeviceSubscribe(Request, tag="device/subscribe", frozen=True):
    device_id: DeviceId
    Result: ClassVar[type[Payload]] = DeviceDetail
    Event: ClassVar[type[Payload] | None] = DeviceChanged
    max_result_size: ClassVar[int] = MAX_TEXT_MESSAGE


class Unsubscribe(Request, tag="unsubscribe", frozen=True):
    subscription: Annotated[int, msgspec.Meta(ge=0)]


CONSOLE_API = Api(
    "console",
    [
        DevicesList,
        DevicesSubscribe,
        DeviceGet,
        DeviceSubscribe,
        Unsubscribe,
        SupportCodeCreate,
        SessionRequest,
        SessionStop,
        SessionExtend,
        *DIAGNOSTICS_COMMANDS,
    ],
)
