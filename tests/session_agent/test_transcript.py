"""The chat transcript on the session record: attached once by the session's technician, fixed afterwards,
vouched for by the audit chain — on a real session with the real agent, on both databases."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import msgspec

from tests.session_agent.live import live_session
from tests.support.api import ApiClient
from tests.support.server import RunningServer


def transcript(n: int = 2) -> dict[str, object]:
    lines = [
        {"id": 1, "from": "technician", "time": time.time(), "text": "Dag, ik kijk even mee", "phrase": 0},
        {"id": 1, "from": "user", "time": time.time(), "text": "Dank u — é ç ë €", "phrase": 0},
        {"id": 2, "from": "technician", "time": time.time(), "text": "One moment, please.", "phrase": 3},
    ]
    return {"messages": lines[:n], "dropped": 0}


async def test_the_technician_attaches_the_transcript_once(
    server_any_db: RunningServer, tmp_path: Path
) -> None:
    server = server_any_db
    async with live_session(server, tmp_path, capabilities=["chat"]) as live:
        await live.stop()
        await live.wait_ended()
        path = f"/api/sessions/{live.session_id}/transcript"
        async with ApiClient(server.url) as admin:
            await admin.login_ok(server.admin_username, server.admin_password)
            created = await admin.post(path, transcript(3))
            assert created.status == 201, created.body
            record = created.body
            assert record["messages"] == 3 and record["technician"] == server.admin_username
            assert record["transcript"]["messages"][1]["text"] == "Dank u — é ç ë €"
            # fixed once attached: a second version is refused, the first stays
            again = await admin.post(path, transcript(1))
            assert (again.status, again.error_code) == (409, "transcript_exists")
            read = await admin.get(path)
            assert read.status == 200 and read.body["messages"] == 3
            # the chain holds the digest of exactly what is stored
            body = msgspec.json.encode(msgspec.convert(read.body["transcript"], dict))
            from steun_server.web import AUDIT

            audit = server.app[AUDIT]
            events = [r for r in await audit.records(limit=1000) if r.event == "session.transcript"]
            assert len(events) == 1
            assert events[0].data["sha256"] == record["sha256"] == read.body["sha256"]
            assert events[0].data["session_id"] == live.session_id
            assert hashlib.sha256(body).hexdigest() == record["sha256"]  # the digest of what is stored

            # another technician may neither attach nor read it
            made = await admin.post("/api/users", {"username": "tom", "role": "technician"})
            assert made.status == 201, made.body
            async with ApiClient(server.url) as tom:
                await tom.login_ok("tom", made.body["password"])
                assert (await tom.get(path)).status == 404
                assert (await tom.post(path, transcript(1))).status == 403


async def test_bad_transcripts_are_refused_and_nothing_is_stored(
    server: RunningServer, tmp_path: Path
) -> None:
    async with live_session(server, tmp_path, capabilities=["chat"]) as live:
        path = f"/api/sessions/{live.session_id}/transcript"
        async with ApiClient(server.url) as admin:
            await admin.login_ok(server.admin_username, server.admin_password)
            too_long = {
                "messages": [{"id": 1, "from": "user", "time": 1.0, "text": "é" * 2049}],
                "dropped": 0,
            }
            assert (await admin.post(path, too_long)).error_code == "invalid_request"
            many = {"messages": [{"id": i, "from": "user", "time": 1.0, "text": "x"} for i in range(1001)]}
            assert (await admin.post(path, many)).status == 400
            wrong_sender = {"messages": [{"id": 1, "from": "relay", "time": 1.0, "text": "x"}]}
            assert (await admin.post(path, wrong_sender)).status == 400
            extra = {"messages": [], "dropped": 0, "owner": "eve"}
            assert (await admin.post(path, extra)).status == 400
            assert (
                await admin.post("/api/sessions/AAAAAAAAAAAAAAAAAAAAAA/transcript", transcript())
            ).status == 404
            assert (await admin.post("/api/sessions/..%2f..%2fetc/transcript", transcript())).status == 404
            assert (await admin.post("/api/sessions/" + "é" * 16 + "/transcript", transcript())).status == 404
            assert (await admin.get(path)).status == 404  # none of the above was stored
            assert (await admin.post(path, transcript())).status == 201
