"""``/openapi.json`` is a contract: it validates as OpenAPI 3, every ``/v1`` operation says what it answers (a typed
schema, not "an object"), its errors and the bodies routes read themselves, the key scheme and the websockets are
declared; and real answers of a real server (a live call, a stored call, the call list, status, keys, ...) validate
against the schema of their route, with no key the schema does not declare (``api/models.py``)."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from media_server.api import models
from media_server.app import create_app
from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from media_server.config import Settings
from tests.conftest import ROOT, Server
from tests.speech import program, tel8k

METHODS = ("get", "put", "post", "delete", "patch")
NOT_YET_TYPED: set[tuple[str, str]] = set()  # (every /v1 route is typed)
# Routes that read a JSON body themselves (to answer 400 with their own message): the body's schema.
HAND_PARSED = {
    ("put", "/v1/calls/{call_id}/disposition"): "DispositionBody",
    ("put", "/v1/calls/{call_id}/consent"): "ConsentBody",
    ("put", "/v1/calls/{call_id}/legal-hold"): "LegalHoldBody",
    ("put", "/v1/team/config"): "TeamConfig",
    ("post", "/v1/erasures"): "PersonBody",
    ("post", "/v1/webhooks"): "WebhookBody",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document of an app as ``serve`` builds it (not started: the schema needs no model)."""
    app = create_app(Settings.model_validate({"data_dir": tmp_path_factory.mktemp("openapi"), "grpc": {"port": 0}}))
    document: dict[str, Any] = app.openapi()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def typed(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that says something: an object with properties, a list of such, or a scalar; not ``{}`` nor an
    object of anything."""
    schema = resolve(spec, schema)
    if "anyOf" in schema:
        return all(typed(spec, s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return typed(spec, schema.get("items", {}))
    if schema.get("type") == "object" or "properties" in schema:
        return bool(schema.get("properties"))
    return "type" in schema or "const" in schema or "enum" in schema


def test_the_document_is_valid_openapi_3_with_the_key_scheme_and_the_websockets(spec: dict[str, Any]) -> None:
    validate(spec)  # raises on an invalid document
    assert spec["openapi"].startswith("3.")
    scheme = spec["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"apiKey": []}]
    for path in ("/health", "/health/live", "/health/ready"):
        assert spec["paths"][path]["get"]["security"] == [], path
    # Websockets are not operations OpenAPI describes: the description lists them and points at their page.
    description = spec["info"]["description"]
    for socket in ("/v1/events", "/v1/calls/{call_id}/events", "/v1/ingest/twilio", "/v1/ingest/l16", "/v1/listen"):
        assert f"`{socket}`" in description, socket
    assert "docs/api.md" in description and "gRPC" in description
    page = (ROOT / "docs" / "api.md").read_text()
    for socket in ("/v1/events", "/v1/calls/{call_id}/events", "/v1/ingest/twilio", "/v1/ingest/l16", "/v1/listen"):
        assert socket in page, socket
    for word in ("Sec-WebSocket-Protocol", "?token=", "4401", "1008", "1013", "MediaServer", "StreamCall"):
        assert word in page, word


def test_the_readme_links_the_api_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/api.md" in readme and "/docs" in readme and "/openapi.json" in readme


def test_every_v1_operation_says_what_it_answers(spec: dict[str, Any]) -> None:
    untyped = []
    for method, path, operation in operations(spec):
        if not path.startswith("/v1/") or (method, path) in NOT_YET_TYPED:
            continue
        answers = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        if method == "patch" and path == "/v1/ingest/whip/{session_id}":
            assert "501" in operation["responses"]  # (WHIP's PATCH: trickle ICE is not supported)
            continue
        assert answers, f"{method} {path}: no success response"
        for code, answer in answers.items():
            content = answer.get("content") or {}
            if code in ("200", "201") and method == "get":
                assert content, f"{method} {path}: {code} without content"
            for media, body in content.items():
                if not typed(spec, body.get("schema", {})):
                    untyped.append(f"{method.upper()} {path} {code} {media}: {body.get('schema')}")
    assert not untyped, "untyped answers:\n" + "\n".join(untyped)
    # Each JSON answer is a named model, with a description of its fields.
    for name in ("CallDetail", "CallList", "LiveCalls", "Status", "KeyList", "Me"):
        fields = spec["components"]["schemas"][name]["properties"]
        assert any("description" in f for f in fields.values()), name


def test_errors_and_hand_read_bodies_are_declared(spec: dict[str, Any]) -> None:
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["detail"] and problem["properties"]["detail"]["type"] == "string"
    for method, path, operation in operations(spec):
        if not path.startswith("/v1/") or path.startswith("/v1/ingest/whip") or (method, path) in NOT_YET_TYPED:
            continue
        for code in ("401", "403"):
            answer = operation["responses"].get(code)
            assert answer is not None, f"{method} {path}: {code} not declared"
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    declared = {
        (method, path): set(op["responses"]) for method, path, op in operations(spec) if path.startswith("/v1/")
    }
    assert {"404", "409"} <= declared[("delete", "/v1/calls/{call_id}")]
    assert {"400", "403", "404", "409"} <= declared[("put", "/v1/calls/{call_id}/consent")]
    assert {"404", "409", "503"} <= declared[("post", "/v1/calls/{call_id}/listen")]
    assert "503" in spec["paths"]["/health/ready"]["get"]["responses"]
    invalid = spec["paths"]["/v1/team/config"]["put"]["responses"]["400"]["content"]["application/json"]["schema"]
    assert resolve(spec, invalid)["properties"]["detail"]
    for (method, path), name in HAND_PARSED.items():
        body = spec["paths"][path][method].get("requestBody")
        assert body is not None, f"{method} {path}: its body is not declared"
        schema = body["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{name}"}
        assert resolve(spec, schema)["properties"], name
    sdp = spec["paths"]["/v1/calls/{call_id}/listen"]["post"]
    assert (
        "application/sdp" in sdp["requestBody"]["content"] and "application/sdp" in sdp["responses"]["201"]["content"]
    )


# -- real answers against the schema ------------------------------------------------------------------------------


def strict(spec: dict[str, Any]) -> dict[str, Any]:
    """The components with no undeclared key allowed, but in the models open by design (``models.Open``)."""
    open_by_design = {model.__name__ for model in models.Open.__subclasses__()}
    components = copy.deepcopy(spec["components"])
    for name, schema in components["schemas"].items():
        if "properties" in schema and name not in open_by_design:
            schema["additionalProperties"] = False
    return components


def check(spec: dict[str, Any], method: str, path: str, response: httpx.Response) -> Any:
    """``response`` is a success of ``method path`` and its JSON is what the route's schema says."""
    assert response.is_success, (method, path, response.status_code, response.text)
    answer = spec["paths"][path][method]["responses"][str(response.status_code)]
    schema = answer["content"]["application/json"]["schema"]
    assert "$ref" in schema, f"{method} {path}: an untyped answer ({schema})"
    body = response.json()
    validator = Draft202012Validator({**schema, "components": strict(spec)})
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not problems, f"{method.upper()} {path} breaks its schema:\n" + "\n".join(problems[:20])
    return body


@pytest.mark.e2e
async def test_real_answers_hold_to_the_contract(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        spec = (await http.get("/openapi.json")).json()
    speech = program(tel8k()[:1], gap_s=1.0, lead_s=0.3)
    call_id = "openapi-" + uuid.uuid4().hex[:8]
    meta = {"repName": "Dana", "repConsent": "granted", "customerPhone": "+15550100", "customerConsent": "granted"}
    recording = Recording([speech.pcm, np.zeros_like(speech.pcm)], speech.sample_rate)
    streaming = asyncio.create_task(
        stream_call(recording, server.ws_url, "twilio", server.keys["ingest"], call_id, meta, speed=2.0)
    )
    auth = {"Authorization": f"Bearer {server.keys['admin']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=10) as http:
        for _ in range(200):  # the live call, as the wall shows it
            live = check(spec, "get", "/v1/live", await http.get("/v1/live"))
            if any(c["id"] == call_id for c in live["calls"]):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the call never showed as live")
        check(spec, "get", "/v1/status", await http.get("/v1/status"))
        check(spec, "get", "/v1/calls/{call_id}", await http.get(f"/v1/calls/{call_id}"))  # (live: so far)
        set_live = await http.put(f"/v1/calls/{call_id}/disposition", json={"disposition": "demo_booked"})
        assert check(spec, "put", "/v1/calls/{call_id}/disposition", set_live)["live"] is True
        await streaming

        for _ in range(300):  # the stored call, once it ended
            stored = await http.get(f"/v1/calls/{call_id}")
            if stored.status_code == 200 and stored.json()["status"] != "live":
                break
            await asyncio.sleep(0.1)
        call = check(spec, "get", "/v1/calls/{call_id}", stored)
        assert call["status"] == "completed" and call["transcript"] and call["metrics"], call
        assert call["disposition"] == "demo_booked"
        listed = check(spec, "get", "/v1/calls", await http.get("/v1/calls", params={"limit": 5}))
        assert call_id in [c["id"] for c in listed["calls"]] and "snippet" not in listed["calls"][0]
        word = call["transcript"][0]["text"].split()[0].strip(".,?!")
        found = check(spec, "get", "/v1/calls", await http.get("/v1/calls", params={"q": word}))
        assert any(c.get("snippet") for c in found["calls"]), found  # (a search result's snippet is declared)

        hold = await http.put(f"/v1/calls/{call_id}/legal-hold", json={"hold": True})
        assert check(spec, "put", "/v1/calls/{call_id}/legal-hold", hold) == {"id": call_id, "legalHold": True}
        check(spec, "get", "/v1/me", await http.get("/v1/me"))
        check(spec, "get", "/v1/team/config", await http.get("/v1/team/config"))
        check(spec, "get", "/v1/audit", await http.get("/v1/audit", params={"limit": 20}))
        check(spec, "get", "/v1/audit/listens", await http.get("/v1/audit/listens"))
        check(spec, "get", "/v1/webhooks", await http.get("/v1/webhooks"))
        activity = check(spec, "get", "/v1/reps/activity", await http.get("/v1/reps/activity"))
        assert set(activity) >= {"days", "weeks", "scope"}, activity

        created = check(spec, "post", "/v1/keys", await http.post("/v1/keys", json={"role": "rep", "label": "oa"}))
        keys = check(spec, "get", "/v1/keys", await http.get("/v1/keys"))
        assert created["id"] in [k["id"] for k in keys["keys"]]
        rotated = await http.post(f"/v1/keys/{created['id']}/rotate", json={})
        rotated_key = check(spec, "post", "/v1/keys/{key_id}/rotate", rotated)
        revoked = await http.post(f"/v1/keys/{rotated_key['id']}/revoke")
        check(spec, "post", "/v1/keys/{key_id}/revoke", revoked)

        # Errors are {"detail": "..."} as declared.
        missing = await http.get("/v1/calls/no-such-call")
        assert missing.status_code == 404 and list(missing.json()) == ["detail"]
        refused = await http.get("/v1/me", headers={"Authorization": "Bearer msk_" + "n" * 43})
        assert refused.status_code == 401 and isinstance(refused.json()["detail"], str)
        check(spec, "get", "/health/ready", await http.get("/health/ready"))


def test_the_api_page_names_every_route(spec: dict[str, Any]) -> None:
    """``docs/api.md`` names every REST path of the document (REST is there, briefly, beside the websockets)."""
    page = (ROOT / "docs" / "api.md").read_text()
    missing = [path for path in spec["paths"] if path.startswith("/v1/") and path not in page]
    assert not missing, f"docs/api.md does not mention {missing}"
