"""The API's operations, registered once, validated by pydantic and documented from the same
models (OpenAPI 3.1 uses JSON Schema 2020-12, which pydantic emits as it is)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from tracker.errors import InvalidInput
from tracker.security import PUBLIC, permission_of

F = TypeVar("F", bound=Callable[..., Any])
API_PREFIX = "/api/v1"
_PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    endpoint: str
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    view: Callable[..., Any]
    tag: str
    response_media_type: str = "application/json"
    refusals: tuple[str, ...] = ()  # status codes a rule may answer beyond the usual ones


OPERATIONS: list[Operation] = []


def api_route(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    response_media_type: str = "application/json",
    refusals: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Register a route on the API blueprint and record it for the OpenAPI document."""

    def decorator(view: F) -> F:
        endpoint = view.__name__
        bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=[method])
        OPERATIONS.append(
            Operation(
                method.lower(),
                rule,
                f"{bp.name}.{endpoint}",
                summary,
                body,
                query,
                response,
                status,
                view,
                tag,
                response_media_type,
                refusals,
            )
        )
        return view

    return decorator


def _validation_details(error: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "(body)", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


M = TypeVar("M", bound=BaseModel)


# The deepest body the API takes is three levels (checklist answers); the parser would
# recurse until it overflowed the stack on a body nested a thousand levels (a 500).
MAX_JSON_DEPTH = 10


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, read without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_body(model: type[M]) -> M:
    """The JSON body, validated; malformed or invalid input is a 400 that names each problem."""
    if not request.is_json:
        raise InvalidInput("The request body must be JSON (Content-Type: application/json).")
    depth = json_depth(request.get_data(cache=True))
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(
            f"The request body is nested {depth} levels deep; no request needs more than "
            f"{MAX_JSON_DEPTH}.",
            [{"field": "(body)", "message": f"nested deeper than {MAX_JSON_DEPTH} levels"}],
        )
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidInput("The request body is not valid JSON.")
    _refuse_nul(data, "(body)")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = _validation_details(error)
        raise InvalidInput(
            "The request body is invalid: "
            + "; ".join(f"{d['field']}: {d['message']}" for d in details),
            details,
        ) from None


def _refuse_nul(value: Any, where: str) -> None:
    """No text may hold a NUL character: PostgreSQL cannot store one (a 500 otherwise), and
    no clinical record needs one."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                f"{where}: text must not contain NUL (\\u0000) characters.",
                [{"field": where, "message": "NUL character"}],
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, f"{where}.{key}" if where != "(body)" else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{where}.{index}")


def parse_query(model: type[M]) -> M:
    _refuse_nul(request.args.to_dict(), "(query)")
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        details = _validation_details(error)
        raise InvalidInput(
            "The query parameters are invalid: "
            + "; ".join(f"{d['field']}: {d['message']}" for d in details),
            details,
        ) from None


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {}},
            },
        }
    },
}

_ERROR_DESCRIPTIONS = {
    "400": "Malformed input",
    "401": "Not authenticated",
    "403": "The role does not permit it",
    "404": "Not found (or at another site)",
    "409": "Version conflict (for a background export's file: not made yet)",
    "410": "Gone: a background export's file expired and was deleted",
    "413": "The request body is larger than the server accepts",
    "422": "Refused by a rule; details lists every reason",
    "429": "Too many attempts (a password asked again is rate limited); wait and retry",
    "503": "The database is not reachable; nothing was changed",
}

# The largest id a path accepts: ids are 32-bit integer columns; a larger one is a 404
# (see BoundedIntConverter in tracker/__init__.py), never a database error.
MAX_PATH_ID = 2**31 - 1

# What a response of each media type is, when the operation names no response model.
_PLAIN_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "application/json": {"type": "object"},
    "text/csv": {"type": "string"},
    "application/xml": {"type": "string"},
    "application/zip": {"type": "string"},
    "application/fhir+json": {"type": "object"},
}


IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Send the same key again (with the same body) and get the first answer back instead "
        "of a second record; the same key with another body is a 422. Keys are the sender's "
        "own: 1 to 255 printable ASCII characters, a UUID for example."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for converter, name in _PATH_PARAM.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0, "maximum": MAX_PATH_ID}
            if converter == "int"
            else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return API_PREFIX + _PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", rule), params


def _alternative_media_types(op: Operation) -> list[str]:
    """Media types a ``format`` query parameter can ask for besides JSON (e.g. ``csv``)."""
    if (
        op.query is None
        or "format" not in op.query.model_fields
        or op.response_media_type != "application/json"
    ):
        return []
    schema = op.query.model_json_schema().get("properties", {}).get("format", {})
    return ["text/csv"] if "csv" in schema.get("enum", []) else []


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    models: list[tuple[type[BaseModel], Any]] = []
    for op in OPERATIONS:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
    refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    schemas = dict(definitions.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path, parameters = _openapi_path(op.rule)
        if op.query is not None:
            query_schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
            # An enumeration in a query parameter is a shared schema like any other.
            schemas.update(query_schema.get("$defs", {}))
            required = set(query_schema.get("required", []))
            for name, prop in query_schema.get("properties", {}).items():
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": {k: v for k, v in prop.items() if k != "title"},
                    }
                )
        permission = permission_of(op.view)
        operation: dict[str, Any] = {
            "operationId": op.endpoint.replace(".", "_"),
            "summary": op.summary,
            "tags": [op.tag],
            "x-permission": permission,
            "responses": {},
        }
        if permission == PUBLIC:
            operation["security"] = []
        if op.method == "post" and permission != PUBLIC:
            parameters.append(IDEMPOTENCY_PARAMETER)
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        if op.response is not None:
            content = {op.response_media_type: {"schema": refs[(op.response, "serialization")]}}
        else:
            content = {
                op.response_media_type: {
                    "schema": _PLAIN_RESPONSE_SCHEMAS.get(
                        op.response_media_type, {"type": "string"}
                    )
                }
            }
        for media_type in _alternative_media_types(op):
            content.setdefault(media_type, {"schema": _PLAIN_RESPONSE_SCHEMAS[media_type]})
        operation["responses"][str(op.status)] = {"description": "OK", "content": content}
        error_codes = ["400", "422"] if op.method in {"post", "put", "patch", "delete"} else ["400"]
        # Any operation may find the database down (a clear 503, never a hang).
        error_codes.append("503")
        error_codes += op.refusals
        if op.body is not None:
            error_codes.append("413")
        if permission != PUBLIC:
            error_codes += ["401", "403"]
        if "<" in op.rule or (permission != PUBLIC and (op.body or op.query)):
            # A path id, or a site, user or session named in the body or query, that does not
            # exist (or is at another site).
            error_codes.append("404")
        if op.body is not None:
            error_codes.append("409")
        if op.method == "post" and permission != PUBLIC:
            error_codes.append("429")
        for code in sorted(set(error_codes)):
            operation["responses"][code] = {
                "description": _ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        paths.setdefault(path, {})[op.method] = operation

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tracker API",
            "version": "1",
            "description": "Protocol workflow tracker for MDMA-assisted therapy trials.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Created with `tracker users token`.",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "tracker_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
    }
