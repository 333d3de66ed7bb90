"""The access audit, as an auditor reads it: every read of a call, search, event subscription, consent change,
deletion, configuration change and key created leaves one record (who, what, when, from where), over REST,
websockets and gRPC; only admins read it. The real routers under uvicorn and the gRPC face on the server's
services in this process over a real SQLite store (``tests/local_services.py``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import httpx
from websockets.asyncio.client import connect

from media_server.api import audit, calls, events, team
from media_server.api.grpc import add_to_server
from media_server.auth.keys import Role
from media_server.calls.lifecycle import CallEnd
from media_server.v1 import api_pb2, api_pb2_grpc
from tests.local_services import local_grpc, local_http


async def test_every_read_and_change_is_recorded_with_who_what_and_where_and_only_admins_read_it(
    tmp_path: Path,
) -> None:
    async with local_http(tmp_path, [calls.router, events.router, team.router, audit.router]) as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "ops")
        rep_key, rep = await store.create_key("acme", Role.REP, "Rita")
        _, manager = await store.create_key("acme", Role.MANAGER, "Max")
        ended = await local.hold_a_call("stored")
        await ended.end(CallEnd.STOP)
        live = await local.hold_a_call("live")
        base = local.ws_url.replace("ws://", "http://")

        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            as_rep = {"Authorization": f"Bearer {rep}"}
            assert (await http.get("/v1/calls/stored", headers=as_rep)).status_code == 200
            assert (await http.get(f"/v1/calls?q=refund&token={rep}")).status_code == 200
            async with connect(f"{local.ws_url}/v1/calls/stored/events?after=0&token={rep}") as ws:
                await asyncio.wait_for(ws.recv(), 5)
            body = {"role": "customer", "consent": "denied"}
            assert (await http.put("/v1/calls/live/consent", json=body, headers=as_rep)).status_code == 200
            as_manager = {"Authorization": f"Bearer {manager}"}
            assert (await http.delete("/v1/calls/stored", headers=as_manager)).status_code == 204
            as_admin = {"Authorization": f"Bearer {admin}"}
            assert (await http.put("/v1/team/config", json={}, headers=as_admin)).status_code == 200

            assert (await http.get("/v1/audit", headers=as_rep)).status_code == 403
            assert (await http.get("/v1/audit", headers=as_manager)).status_code == 403
            answer = await http.get("/v1/audit", headers=as_admin)
            assert answer.status_code == 200
            entries = answer.json()["entries"]
            only_reads = (await http.get("/v1/audit?action=read_call", headers=as_admin)).json()["entries"]
            by_rep = (await http.get(f"/v1/audit?keyId={rep_key.id}", headers=as_admin)).json()["entries"]

        actions = [e["action"] for e in reversed(entries)]  # (newest first)
        assert actions == [
            *["key_create"] * 4,  # (the test's ingest key, then these three)
            "read_call",
            "search_calls",
            "subscribe_events",
            "consent_change",
            "delete_call",
            "config_change",
            "read_audit",
        ], actions
        of = {e["action"]: e for e in entries}
        read = of["read_call"]
        assert read["by"] == {"keyId": rep_key.id, "label": "Rita", "role": "rep"}
        assert (read["callId"], read["via"], read["remote"]) == ("stored", "rest", "127.0.0.1")
        search = of["search_calls"]
        assert search["target"] == "q=refund" and rep not in json.dumps(entries)  # (no key in the record)
        subscribe = of["subscribe_events"]
        assert (subscribe["via"], subscribe["callId"], subscribe["target"]) == ("websocket", "stored", "after=0")
        assert of["consent_change"]["target"] == "customer=denied"
        assert entries[0]["by"]["role"] == "admin"
        assert [e["action"] for e in only_reads] == ["read_call"]
        assert {e["action"] for e in by_rep} == {"read_call", "search_calls", "subscribe_events", "consent_change"}
        await live.end(CallEnd.STOP)


async def test_grpc_reads_and_changes_are_recorded_too(tmp_path: Path) -> None:
    async with local_grpc(tmp_path, [add_to_server]) as local:
        store = local.services.store
        _, admin = await store.create_key("acme", Role.ADMIN, "ops")
        ended = await local.hold_a_call("stored")
        await ended.end(CallEnd.STOP)
        metadata = [("authorization", f"Bearer {admin}")]
        async with grpc.aio.insecure_channel(local.target) as channel:
            stub = api_pb2_grpc.MediaServerStub(channel)
            await stub.GetCall(api_pb2.GetCallRequest(call_id="stored"), metadata=metadata)
            await stub.ListCalls(api_pb2.ListCallsRequest(query="refund"), metadata=metadata)
            await stub.DeleteCall(api_pb2.DeleteCallRequest(call_id="stored"), metadata=metadata)
        log = await store.access_log("acme")
        assert [(e.action, e.via) for e in reversed(log)][-3:] == [
            ("read_call", "grpc"),
            ("search_calls", "grpc"),
            ("delete_call", "grpc"),
        ]
        assert log[0].remote == "127.0.0.1" and log[1].target and "refund" in log[1].target
