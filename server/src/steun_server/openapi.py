"""The OpenAPI 3.1 document, generated from the route-spec registry (never written by hand)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .web import RouteSpec

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")
REF = "#/components/schemas/{name}"


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    retry_after: float | None = None


class ErrorReply(msgspec.Struct, kw_only=True):
    error: ErrorBody


_ERROR_TEXT = {
    400: "invalid request",
    401: "not signed in (or wrong credentials)",
    403: "forbidden (role, CSRF token or Origin)",
    404: "not found",
    409: "conflict",
    413: "body too large",
    429: "throttled; see retry_after",
}


def openapi_path(path: str) -> str:
    """aiohttp's ``/x/{id:\\d+}`` becomes OpenAPI's ``/x/{id}``."""
    return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def documented(specs: Iterable[RouteSpec]) -> list[RouteSpec]:
    return [s for s in specs if s.include_in_schema and s.path.startswith("/api/")]


def build_openapi(specs: Iterable[RouteSpec], *, title: str, version: str, server_url: str) -> dict[str, Any]:
    routes = documented(specs)
    types: list[Any] = [ErrorReply]
    for spec in routes:
        for kind in (spec.request, spec.response, spec.query):
            if kind is not None and kind not in types:
                types.append(kind)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        operation: dict[str, Any] = {
            "operationId": f"{spec.method.lower()}_{_slug(spec.path)}",
            "summary": spec.summary,
            "tags": list(spec.tags),
            "security": [] if spec.public else [{"session": []}],
        }
        if spec.description:
            operation["description"] = spec.description
        if spec.permission is not None:
            operation["x-steun-permission"] = str(spec.permission)
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(spec.path)
        ]
        if spec.query is not None:
            parameters.extend(_query_parameters(by_type[spec.query], components))
        if spec.method != "GET":
            parameters.append(
                {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "description": "must equal the steun_csrf cookie",
                    "schema": {"type": "string"},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if spec.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[spec.request]}},
            }
        responses: dict[str, Any] = {}
        if spec.websocket:
            responses["101"] = {"description": "switching to the websocket protocol"}
        else:
            ok: dict[str, Any] = {"description": "success"}
            if spec.response is not None:
                ok["content"] = {"application/json": {"schema": by_type[spec.response]}}
            responses[str(spec.status)] = ok
        statuses = {400, *spec.errors}
        if not spec.public:
            statuses |= {401, 403}
        elif spec.method != "GET" or spec.websocket:
            statuses.add(403)
        for status in sorted(statuses):
            responses[str(status)] = {
                "description": _ERROR_TEXT.get(status, "error"),
                "content": {"application/json": {"schema": by_type[ErrorReply]}},
            }
        operation["responses"] = responses
        paths.setdefault(openapi_path(spec.path), {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "steun_session"},
            },
        },
    }


def _query_parameters(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    ref = schema.get("$ref", "")
    body = components.get(ref.rsplit("/", 1)[-1], schema) if ref else schema
    required = set(body.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in body.get("properties", {}).items()
    ]


def _slug(path: str) -> str:
    return "_".join(p for p in re.split(r"[^A-Za-z0-9]+", openapi_path(path)) if p and p != "api") or "root"
