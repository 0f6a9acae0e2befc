"""Signing in on the real server over TLS, on SQLite and PostgreSQL: passwords, throttling, TOTP, recovery
codes, session cookies, CSRF, Origin, roles and user management."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from steun_server.auth import totp
from steun_server.storage.tables import web_sessions
from steun_server.web import AUTH, DB

from tests.support.api import ApiClient, create_user
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

EVIL = "https://evil.example"


async def admin_client(server: RunningServer) -> ApiClient:
    client = ApiClient(server.url)
    await client.login_ok(server.admin_username, server.admin_password)
    return client


# -- passwords and sessions -----------------------------------------------------------------------------------


async def test_login_sets_hardened_cookies_and_stores_only_a_hash(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as client:
        response = await client.login(server.admin_username, server.admin_password)
        assert response.status == 200, response.body
        assert response.body["user"] == {
            "id": 1,
            "username": server.admin_username,
            "display_name": "Administrator",
            "role": "admin",
            "totp_enabled": False,
        }
        session = response.cookie_attributes("steun_session")
        assert session is not None
        attributes = {part.strip().lower() for part in session.split(";")[1:]}
        assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
        csrf = response.cookie_attributes("steun_csrf")
        assert csrf is not None
        csrf_attributes = {part.strip().lower() for part in csrf.split(";")[1:]}
        assert "httponly" not in csrf_attributes  # the console's JS must read it
        assert {"secure", "samesite=strict"} <= csrf_attributes
        token = client.cookie("steun_session")
        assert token is not None
    async with server.app[DB].connect() as conn:
        stored = (await conn.execute(sa.select(web_sessions.c.token_hash))).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


async def test_wrong_password_and_unknown_user(server_any_db: RunningServer) -> None:
    async with ApiClient(server_any_db.url) as client:
        wrong = await client.login(server_any_db.admin_username, "not the password")
        assert (wrong.status, wrong.error_code) == (401, "invalid_credentials")
        unknown = await client.login("nobody", "whatever-password")
        assert (unknown.status, unknown.error_code) == (401, "invalid_credentials")
        assert (await client.get("/api/auth/me")).status == 401


async def test_me_signed_out_hands_out_csrf_cookie(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        response = await client.get("/api/auth/me")
        assert (response.status, response.error_code) == (401, "unauthorized")
        assert response.cookie_attributes("steun_csrf") is not None
        assert client.csrf_token


async def test_logout_ends_the_session(server_any_db: RunningServer) -> None:
    async with ApiClient(server_any_db.url) as client:
        await client.login_ok(server_any_db.admin_username, server_any_db.admin_password)
        token = client.cookie("steun_session")
        assert (await client.post("/api/auth/logout")).status == 200
        assert (await client.get("/api/auth/me")).status == 401
    async with ApiClient(server_any_db.url) as replay:
        response = await replay.get("/api/auth/me", headers={"Cookie": f"steun_session={token}"})
        assert response.status == 401


async def test_session_idle_expiry(tmp_path: Path) -> None:
    server = await RunningServer.create(
        tmp_path / "d", overrides={"session_idle_timeout": 0.5, "session_absolute_timeout": 60.0}
    )
    try:
        async with ApiClient(server.url) as client:
            await client.login_ok(server.admin_username, server.admin_password)
            assert (await client.get("/api/auth/me")).status == 200

            async def expired() -> bool:
                response = await client.get("/api/auth/me")
                return response.status == 401 and response.error_code == "session_expired"

            await wait_for(expired, timeout=5, interval=0.2, what="the idle session to expire")
    finally:
        await server.stop()


# -- throttling -----------------------------------------------------------------------------------------------


async def wait_until_allowed(client: ApiClient, username: str) -> None:
    """Poll with a request that is refused before any password check while throttled."""

    async def allowed() -> bool:
        response = await client.login(username, "probe-that-is-wrong")
        if response.status == 429:
            return False
        raise AssertionError(f"the probe itself counted as an attempt: {response.status}")

    await wait_for(allowed, timeout=10, interval=0.02, what="the throttle to lift")


async def test_throttle_grows_per_account_and_resets_on_success(server_any_db: RunningServer) -> None:
    server = server_any_db
    name = server.admin_username
    async with ApiClient(server.url) as client:
        for _ in range(3):  # free failures
            assert (await client.login(name, "wrong-password!")).status == 401
        delays = []
        for _ in range(3):
            assert (await client.login(name, "wrong-password!")).status == 401
            throttled = await client.login(name, server.admin_password)  # even the right one is refused
            assert throttled.status == 429, throttled.body
            assert throttled.error_code == "throttled"
            assert int(throttled.headers["Retry-After"]) >= 1
            delays.append(throttled.body["error"]["retry_after"])
            # wait for the delay to pass without another attempt (a refused attempt is not counted)
            await wait_for(
                lambda: server.app[AUTH].account_throttle.retry_after("user:" + name) == 0,
                timeout=10,
                what="the account throttle to lift",
            )
        assert delays[0] < delays[1] < delays[2], delays
        base = server.config.throttle_base_delay
        for i, delay in enumerate(delays):  # 0.2, 0.4, 0.8 s, less the time the requests took
            assert base * 2**i * 0.5 < delay <= base * 2**i, delays
        # success resets the count: the next failure is free again
        assert (await client.login(name, server.admin_password)).status == 200
        assert (await client.login(name, "wrong-password!")).status == 401
        assert (await client.login(name, server.admin_password)).status == 200


async def test_throttle_per_address_and_per_account(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        bob_password = await create_user(admin, "bob")
    async with (
        ApiClient(server.url, local_addr="127.0.0.1") as here,
        ApiClient(server.url, local_addr="127.0.0.2") as elsewhere,
    ):
        # per account: admin is throttled from one address...
        for _ in range(4):
            assert (await here.login(server.admin_username, "wrong-password!")).status == 401
        assert (await here.login(server.admin_username, server.admin_password)).status == 429
        # ...and from any other address too, while other accounts there are not
        assert (await elsewhere.login(server.admin_username, server.admin_password)).status == 429
        assert (await elsewhere.login("bob", bob_password)).status == 200
        # per address: many accounts, one failure each, from 127.0.0.2 (10 free failures per address)
        for i in range(11):
            assert (await elsewhere.login(f"user{i}", "wrong-password!")).status == 401
        response = await elsewhere.login("bob", bob_password)
        assert (response.status, response.error_code) == (429, "throttled")
        # bob from the first address is fine
        assert (await here.login("bob", bob_password)).status == 200


# -- TOTP -----------------------------------------------------------------------------------------------------


async def enrol_totp(client: ApiClient) -> tuple[str, int, list[str]]:
    """Enrol and verify TOTP; returns (secret, the step used to verify, recovery codes)."""
    enroll = await client.post("/api/auth/totp/enroll")
    assert enroll.status == 200, enroll.body
    secret = enroll.body["secret"]
    assert enroll.body["otpauth_uri"].startswith("otpauth://totp/")
    assert enroll.body["qr_svg"].startswith("<svg")
    assert (await client.get("/api/auth/me")).body["user"]["totp_enabled"] is False
    step = totp.current_step(time.time())
    verify = await client.post("/api/auth/totp/verify", {"code": totp.code_at_step(secret, step)})
    assert verify.status == 200, verify.body
    codes = verify.body["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert (await client.get("/api/auth/me")).body["user"]["totp_enabled"] is True
    return secret, step, codes


async def test_totp_enrol_login_replay_and_recovery_codes(server_any_db: RunningServer) -> None:
    server = server_any_db
    name, password = server.admin_username, server.admin_password
    async with ApiClient(server.url) as client:
        await client.login_ok(name, password)
        secret, step, codes = await enrol_totp(client)
    async with ApiClient(server.url) as client:
        needed = await client.login(name, password)
        assert (needed.status, needed.error_code) == (401, "totp_required")
        assert client.cookie("steun_session") is None
        # the code used to verify enrolment cannot be used again (same step)
        replay = await client.login(name, password, totp_code=totp.code_at_step(secret, step))
        assert (replay.status, replay.error_code) == (401, "invalid_credentials")
        valid = {totp.code_at_step(secret, step + d) for d in (-2, -1, 0, 1, 2)}
        never = next(
            c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid
        )
        wrong = await client.login(name, password, totp_code=never)
        assert (wrong.status, wrong.error_code) == (401, "invalid_credentials")
        fresh = totp.code_at_step(secret, step + 1)
        assert (await client.login(name, password, totp_code=fresh)).status == 200
        assert (await client.login(name, password, totp_code=fresh)).status == 401  # replay refused
    async with ApiClient(server.url) as client:
        assert (await client.login(name, password, recovery_code=codes[0].upper())).status == 200
        again = await client.login(name, password, recovery_code=codes[0])
        assert (again.status, again.error_code) == (401, "invalid_credentials")
        assert (await client.login(name, password, recovery_code=codes[1])).status == 200
        # a wrong password with a good recovery code does not spend the code
        assert (await client.login(name, "wrong-password!", recovery_code=codes[2])).status == 401
        assert (await client.login(name, password, recovery_code=codes[2])).status == 200


async def test_totp_disable_needs_password_and_fresh_code(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        secret, step, _codes = await enrol_totp(client)
        assert (await client.post("/api/auth/totp/enroll")).status == 409
        bad = await client.post(
            "/api/auth/totp/disable",
            {"password": "wrong-password!", "code": totp.code_at_step(secret, step + 1)},
        )
        assert (bad.status, bad.error_code) == (403, "invalid_credentials")
        replay = await client.post(
            "/api/auth/totp/disable",
            {"password": server.admin_password, "code": totp.code_at_step(secret, step)},
        )
        assert replay.status == 403
        ok = await client.post(
            "/api/auth/totp/disable",
            {"password": server.admin_password, "code": totp.code_at_step(secret, step + 1)},
        )
        assert ok.status == 200, ok.body
        assert (await client.get("/api/auth/me")).body["user"]["totp_enabled"] is False
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
    events = await audit_events(server)
    assert "auth.totp_enabled" in events and "auth.totp_disabled" in events


async def test_totp_verify_wrong_code(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        assert (await client.post("/api/auth/totp/verify", {"code": "123456"})).status == 409
        await client.post("/api/auth/totp/enroll")
        response = await client.post("/api/auth/totp/verify", {"code": "12345x"})
        assert (response.status, response.error_code) == (400, "invalid_code")


# -- CSRF and Origin ------------------------------------------------------------------------------------------


async def test_csrf_missing_or_wrong_is_refused(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as client:
        await client.ensure_csrf()
        for csrf in (None, "wrong-token", ""):
            response = await client.request(
                "POST",
                "/api/auth/login",
                json_body={"username": server.admin_username, "password": server.admin_password},
                csrf=csrf,
            )
            assert (response.status, response.error_code) == (403, "csrf_failed"), csrf
        await client.login_ok(server.admin_username, server.admin_password)
        create = await client.request(
            "POST", "/api/users", json_body={"username": "eve", "role": "admin"}, csrf="forged"
        )
        assert (create.status, create.error_code) == (403, "csrf_failed")
        logout = await client.request("POST", "/api/auth/logout", json_body={}, csrf=None)
        assert logout.status == 403
        assert (await client.get("/api/auth/me")).status == 200  # still signed in
    async with ApiClient(server.url) as cookieless:
        # a header without the matching cookie is not enough
        response = await cookieless.request(
            "POST",
            "/api/auth/login",
            json_body={"username": server.admin_username, "password": server.admin_password},
            csrf="made-up",
        )
        assert response.status == 403


async def test_wrong_or_missing_origin_is_refused(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as client:
        for origin in (EVIL, None, "null", server.url.replace("https", "http")):
            response = await client.request(
                "POST",
                "/api/auth/login",
                json_body={"username": server.admin_username, "password": server.admin_password},
                origin=origin,
            )
            assert (response.status, response.error_code) == (403, "origin_refused"), origin
        await client.login_ok(server.admin_username, server.admin_password)
        create = await client.request(
            "POST", "/api/users", json_body={"username": "eve", "role": "admin"}, origin=EVIL
        )
        assert create.status == 403
        # the server's other local names are its own origin too
        localhost = server.url.replace("127.0.0.1", "localhost")
        ok = await client.request("POST", "/api/users", json_body={"username": "eve"}, origin=localhost)
        assert ok.status == 201


async def test_websocket_origin_checked(server_any_db: RunningServer) -> None:
    import aiohttp

    server = server_any_db
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        for origin in (EVIL, None):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.websocket("/api/ws", origin=origin)
            assert refused.value.status == 403
        ws = await client.websocket("/api/ws")
        await ws.close()
        # agents are not browsers: any Origin on /agent/ws is refused, ours included
        for origin in (EVIL, server.url):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.websocket("/agent/ws", origin=origin)
            assert refused.value.status == 403


async def test_websocket_needs_a_session(server: RunningServer) -> None:
    import aiohttp

    async with ApiClient(server.url) as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.websocket("/api/ws")
        assert refused.value.status == 401


# -- roles and users ------------------------------------------------------------------------------------------


async def test_roles_are_enforced(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        tech_password = await create_user(admin, "tech", "technician")
        spec_password = await create_user(admin, "spec", "specialist")
        token = await admin.post("/api/enrollment-tokens", {"group": "default"})
        assert token.status in (200, 201), token.body
    for name, password in (("tech", tech_password), ("spec", spec_password)):
        async with ApiClient(server.url) as client:
            user = await client.login_ok(name, password)
            assert user["role"] in ("technician", "specialist")
            assert (await client.get("/api/auth/me")).status == 200
            for method, path, body in (
                ("GET", "/api/users", None),
                ("POST", "/api/users", {"username": "mallory", "role": "admin"}),
                ("PATCH", "/api/users/1", {"role": "technician"}),
                ("POST", "/api/enrollment-tokens", {"group": "default"}),
                ("GET", "/api/audit", None),
            ):
                kwargs = {} if body is None else {"json_body": body}
                response = await client.request(method, path, **kwargs)
                assert (response.status, response.error_code) == (403, "forbidden"), (name, method, path)
            # technicians may read the device list
            assert (await client.get("/api/devices")).status == 200


async def test_user_management(server_any_db: RunningServer) -> None:
    server = server_any_db
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        created = await admin.post(
            "/api/users", {"username": "alice", "display_name": "Alice A.", "role": "specialist"}
        )
        assert created.status == 201, created.body
        assert created.body["user"]["role"] == "specialist"
        alice_id = created.body["user"]["id"]
        password = created.body["password"]
        assert len(password) >= 16
        duplicate = await admin.post("/api/users", {"username": "alice"})
        assert (duplicate.status, duplicate.error_code) == (409, "username_taken")
        bad = await admin.post("/api/users", {"username": "Not Valid!"})
        assert bad.status == 400
        unknown_field = await admin.post("/api/users", {"username": "x1", "is_admin": True})
        assert (unknown_field.status, unknown_field.error_code) == (400, "invalid_request")
        listing = await admin.get("/api/users")
        assert [u["username"] for u in listing.body["users"]] == [server.admin_username, "alice"]
        async with ApiClient(server.url) as alice:
            await alice.login_ok("alice", password)
            changed = await admin.patch(f"/api/users/{alice_id}", {"role": "admin"})
            assert changed.status == 200 and changed.body["user"]["role"] == "admin"
            # the new role applies to the running session at once
            assert (await alice.get("/api/users")).status == 200
            assert (await admin.patch(f"/api/users/{alice_id}", {"disabled": True})).status == 200
            assert (await alice.get("/api/auth/me")).status == 401
            assert (await alice.login("alice", password)).status == 401
        assert (await admin.patch("/api/users/999", {"role": "admin"})).status == 404
        last = await admin.patch("/api/users/1", {"role": "technician"})
        assert (last.status, last.error_code) == (409, "last_admin")
    events = await audit_events(server)
    for event in ("user.created", "user.role_changed", "user.disabled", "auth.login"):
        assert event in events


async def test_password_change(server: RunningServer) -> None:
    async with ApiClient(server.url) as client, ApiClient(server.url) as other:
        await client.login_ok(server.admin_username, server.admin_password)
        await other.login_ok(server.admin_username, server.admin_password)
        wrong = await client.post(
            "/api/auth/password",
            {"current_password": "nope-nope-nope", "new_password": "a-new-long-password"},
        )
        assert wrong.status == 403
        short = await client.post(
            "/api/auth/password", {"current_password": server.admin_password, "new_password": "short"}
        )
        assert short.status == 400
        ok = await client.post(
            "/api/auth/password",
            {"current_password": server.admin_password, "new_password": "a-new-long-password"},
        )
        assert ok.status == 200
        assert (await client.get("/api/auth/me")).status == 200
        assert (await other.get("/api/auth/me")).status == 401  # other sessions end
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, "a-new-long-password")


# -- audit over REST ------------------------------------------------------------------------------------------


async def audit_events(server: RunningServer) -> list[str]:
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        records: list[dict[str, object]] = []
        after = 0
        while True:
            page = await admin.get("/api/audit", params={"after": str(after), "limit": "50"})
            assert page.status == 200, page.body
            records.extend(page.body["records"])
            if page.body["next_after"] is None:
                break
            after = page.body["next_after"]
    return [str(r["event"]) for r in records]


async def test_audit_records_and_chain(server_any_db: RunningServer) -> None:
    from steun_server.audit import verify_chain

    server = server_any_db
    async with ApiClient(server.url) as client:
        await client.login(server.admin_username, "wrong-password!")
        await client.login_ok(server.admin_username, server.admin_password)
        bad = await client.get("/api/audit", params={"limit": "100000"})
        assert bad.status == 400
    events = await audit_events(server)
    assert events[:2] == ["server.initialised", "user.created"]
    assert "auth.login_failed" in events and "auth.login" in events
    result = await verify_chain(server.app[DB], server.org_public_key)
    assert result.ok, result
