"""The route table as a whole: nothing answers without a session unless allowlisted, the OpenAPI document
matches the router exactly, and every response carries the security headers and the JSON error shape."""

from __future__ import annotations

import re

from aiohttp import web
from steun_server.openapi import openapi_path
from steun_server.web import ROUTES

from tests.support.api import ApiClient
from tests.support.server import RunningServer

#: (method, path) that may answer without a signed-in session. Keep it short; each needs a reason.
PUBLIC_ALLOWLIST = {
    ("GET", "/api/health"),  # load balancers and the agent's reachability check
    ("GET", "/api/openapi.json"),  # the API description
    ("POST", "/api/auth/login"),  # how one gets a session
    ("GET", "/"),  # the console's index.html (the console then signs in)
    ("GET", "/assets/{path}"),  # the console's static files
    ("GET", "/agent/ws"),  # agents authenticate inside the websocket with signed proofs
    # the relay admits a side by its single-use ticket (console side: ticket AND session cookie); see
    # tests/sessions for the ticket, cookie and Origin checks. It forwards sealed records it cannot read.
    ("GET", "/relay/ws"),
}


def router_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        routes.add((route.method, openapi_path(route.resource.canonical)))
    return routes


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_route_needs_a_session_unless_allowlisted(server: RunningServer) -> None:
    routes = router_routes(server.app)
    assert routes, "the router is empty"
    assert routes >= PUBLIC_ALLOWLIST, PUBLIC_ALLOWLIST - routes
    answered: list[tuple[str, str, int]] = []
    async with ApiClient(server.url) as client:
        await client.ensure_csrf()
        for method, path in sorted(routes):
            # a valid CSRF token and Origin, so that only the missing session can stop the request
            kwargs = {"json_body": {}} if method != "GET" else {}
            response = await client.request(method, concrete(path), origin=server.url, **kwargs)
            if (method, path) in PUBLIC_ALLOWLIST:
                continue
            if response.status != 401:
                answered.append((method, path, response.status))
            else:
                assert response.error_code in ("unauthorized", "session_expired"), (
                    method,
                    path,
                    response.body,
                )
    assert not answered, f"routes that answer without a session: {answered}"


async def test_every_route_comes_from_the_registry(server: RunningServer) -> None:
    declared = {(spec.method, openapi_path(spec.path)) for spec in server.app[ROUTES]}
    assert router_routes(server.app) == declared


async def test_openapi_lists_exactly_the_api_routes(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = response.body
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, operations in document["paths"].items() for method in operations
    }
    api_routes = {(m, p) for m, p in router_routes(server.app) if p.startswith("/api/")}
    assert documented == api_routes
    # every referenced schema exists
    text = response.text
    for name in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert name in document["components"]["schemas"], name
    login = document["paths"]["/api/auth/login"]["post"]
    assert login["security"] == []
    assert "429" in login["responses"]
    users = document["paths"]["/api/users"]["post"]
    assert users["x-steun-permission"] == "admin"
    assert users["security"] == [{"session": []}]
    assert "requestBody" in users
    assert any(p["name"] == "X-CSRF-Token" for p in users["parameters"])
    audit = document["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in audit["parameters"]} == {"after", "limit"}


async def test_security_headers_everywhere(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        responses = [
            await client.get("/api/health"),
            await client.get("/api/auth/me"),  # 401
            await client.get("/no/such/page"),  # 404
            await client.get("/"),  # the console (or a note that it is not built)
            await client.post("/api/auth/login", {"username": "x"}),  # 400
        ]
    for response in responses:
        headers = response.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


async def test_json_errors(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        missing = await client.get("/api/nope")
        assert missing.status == 404 and missing.body == {
            "error": {"code": "not_found", "message": "Not Found"}
        }
        wrong_method = await client.request("DELETE", "/api/health")
        assert wrong_method.status in (403, 405)  # CSRF/Origin checks come first for unsafe methods
        not_json = await client.request(
            "POST", "/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert (not_json.status, not_json.error_code) == (400, "invalid_request")
        deep = await client.request(
            "POST",
            "/api/auth/login",
            data=b"[" * 100 + b"]" * 100,
            headers={"Content-Type": "application/json"},
        )
        assert deep.status == 400
        huge = await client.request(
            "POST",
            "/api/auth/login",
            data=b'{"username": "' + b"x" * (server.config.client_max_size + 10) + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert (huge.status, huge.error_code) == (413, "payload_too_large")
        for response in (missing, not_json, huge):
            assert set(response.body["error"]) >= {"code", "message"}


async def test_static_console_path_traversal_refused(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        for path in (
            "/assets/../../../etc/passwd",
            "/assets/%2e%2e/%2e%2e/etc/passwd",
            "/assets/..%2fsteun.toml",
        ):
            response = await client.get(path)
            assert response.status == 404, path
