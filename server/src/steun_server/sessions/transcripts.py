"""Chat transcripts on the session record: the technician's console attaches one when the session ends.

The relay cannot read the chat (it is end-to-end), so the transcript comes from an end. The console is the
organisation's own end — the technician signed in, the offer carries their name — so it reports its session:
``POST /api/sessions/{session_id}/transcript`` once, by the session's technician (or an admin), after which
the record is fixed (409 on a second attempt). The audit chain gets ``session.transcript`` with the body's
SHA-256 and the message count, so a transcript changed later in the database no longer matches the chain.
Bounds: 1,000 messages of at most 4 KiB of text each (the chat wire's caps), within ``client_max_size``.
See docs/design/0093-chat.md.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Literal

import msgspec
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from steun_protocol.chat import MAX_TEXT_BYTES
from steun_protocol.sessionplane import SessionId

from ..auth.roles import Role, has_permission
from ..errors import bad_request, conflict, forbidden, not_found
from ..storage.tables import session_transcripts
from ..web import RouteTable, current_user, json_response, read_json
from .service import SESSIONS

#: The agent's transcript keeps at most this many messages (steun_agent.chat.service); so does the record.
MAX_MESSAGES = 1000

routes = RouteTable()


class TranscriptLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename={"sender": "from"}):
    id: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    sender: Literal["technician", "user"]
    time: Annotated[float, msgspec.Meta(ge=0, le=1e11)]
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT_BYTES)]
    phrase: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0


class TranscriptUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    messages: Annotated[list[TranscriptLine], msgspec.Meta(max_length=MAX_MESSAGES)]
    #: Messages the console's bounded transcript already let go of.
    dropped: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0


class TranscriptRecord(msgspec.Struct, frozen=True):
    session_id: str
    device_id: str
    technician: str
    created_at: float
    messages: int
    dropped: int
    sha256: str
    transcript: TranscriptUpload


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["session_id"]
    try:
        return msgspec.convert(session_id, SessionId)  # the wire's own rule for a session id
    except msgspec.ValidationError:
        raise not_found("no such session") from None


@routes.post(
    "/api/sessions/{session_id}/transcript",
    permission=Role.TECHNICIAN,
    request=TranscriptUpload,
    response=TranscriptRecord,
    status=201,
    errors=(404, 409, 413),
    summary="Attach the session's chat transcript to its record (once, by its technician)",
    description=(
        "The console sends what the chat showed when the session ended. 404 when this server does not know "
        "the session, 403 for another technician's session, 409 when a transcript is attached already."
    ),
    tags=("sessions",),
)
async def attach_transcript(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    principal = current_user(request)
    service = request.app[SESSIONS]
    session = service.session(session_id)
    if session is None:
        raise not_found("no such session")
    if session.technician.user_id != principal.user_id and not has_permission(principal.role, Role.ADMIN):
        raise forbidden("only the session's technician or an admin may attach its transcript")
    upload = await read_json(request, TranscriptUpload)
    for line in upload.messages:
        if len(line.text.encode()) > MAX_TEXT_BYTES:
            raise bad_request(f"message {line.id} is longer than the chat's {MAX_TEXT_BYTES} bytes")
    body = msgspec.json.encode(upload)
    digest = hashlib.sha256(body).hexdigest()
    record = TranscriptRecord(
        session_id=session_id,
        device_id=session.device_id,
        technician=session.technician.username,
        created_at=time.time(),
        messages=len(upload.messages),
        dropped=upload.dropped,
        sha256=digest,
        transcript=upload,
    )
    try:
        async with service.db.begin() as conn:
            await conn.execute(
                session_transcripts.insert().values(
                    session_id=session_id,
                    device_id=session.device_id,
                    technician_id=session.technician.user_id,
                    technician=session.technician.username,
                    created_at=record.created_at,
                    messages=record.messages,
                    dropped=record.dropped,
                    sha256=digest,
                    body=body.decode(),
                )
            )
    except IntegrityError:
        raise conflict("this session already has a transcript", code="transcript_exists") from None
    await service.audit.emit(
        "session.transcript",
        actor=principal.username,
        source=request.remote,
        data={
            **session.audit_data(),
            "messages": record.messages,
            "dropped": record.dropped,
            "sha256": digest,
        },
    )
    return json_response(record, status=201)


@routes.get(
    "/api/sessions/{session_id}/transcript",
    permission=Role.TECHNICIAN,
    response=TranscriptRecord,
    errors=(404,),
    summary="A session's chat transcript (its technician, or an admin)",
    tags=("sessions",),
)
async def get_transcript(request: web.Request) -> web.StreamResponse:
    session_id = _session_id(request)
    principal = current_user(request)
    service = request.app[SESSIONS]
    async with service.db.connect() as conn:
        row = (
            await conn.execute(
                sa.select(session_transcripts).where(session_transcripts.c.session_id == session_id)
            )
        ).first()
    # another technician's transcript is as unknown as a missing one
    if row is None or (
        row.technician_id != principal.user_id and not has_permission(principal.role, Role.ADMIN)
    ):
        raise not_found("no transcript for this session")
    return json_response(
        TranscriptRecord(
            session_id=row.session_id,
            device_id=row.device_id,
            technician=row.technician,
            created_at=row.created_at,
            messages=row.messages,
            dropped=row.dropped,
            sha256=row.sha256,
            transcript=msgspec.json.decode(row.body, type=TranscriptUpload),
        )
    )


ROUTES = routes
