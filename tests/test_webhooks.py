"""CRM sharing: teams' webhooks (signed, retried from the store's durable outbox, sent once by servers sharing a
database, only to allowed hosts) against a real HTTP receiver on this machine, and the export of call logs."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import connect

from media_server.api import calls as calls_api
from media_server.api import webhooks as webhooks_api
from media_server.auth.keys import Role
from media_server.calls.lifecycle import CallEnd
from media_server.config import WebhookSettings
from media_server.store.outbox import Outbox, Webhook
from media_server.store.records import CallRecord, ChannelRecord, ParticipantRecord, SegmentRecord
from media_server.store.store import MIGRATIONS, Store
from media_server.webhooks.destinations import RefusedDestination, resolve
from media_server.webhooks.sender import WebhookSender
from media_server.webhooks.signing import SIGNATURE_HEADER, signature, verify
from tests.conftest import start_server, stop_server
from tests.local_services import local_http

LOCAL = WebhookSettings(allow=["127.0.0.0/8"], backoff_s=0.2, poll_interval_s=0.05, timeout_s=5)
CARD = "4111 1111 1111 1111"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A CRM's webhook endpoint: answers ``500`` to the first ``failures`` requests, then ``status``."""

    failures: int = 0
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/calls"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(headers, body, time.monotonic()))
            code = 500 if len(self.requests) <= self.failures else self.status
            extra = "Location: http://127.0.0.1:9/elsewhere\r\n" if 300 <= code < 400 else ""
            writer.write(f"HTTP/1.1 {code} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


def a_call(call_id: str, started: datetime, disposition: str = "", team: str = "acme") -> CallRecord:
    return CallRecord(
        id=call_id,
        team=team,
        source="twilio",
        status="completed",
        end_reason="stop",
        started_at=started,
        ended_at=started + timedelta(seconds=95),
        participants=[
            ParticipantRecord("rep", "granted", True, "u-17", "Dana", "", "dana@acme.example"),
            ParticipantRecord("customer", "granted", True, "c-9", "Lee", "+15551230000", ""),
        ],
        channels=[ChannelRecord(0, "rep", 8000, True), ChannelRecord(1, "customer", 8000, True)],
        segments=[
            SegmentRecord(0, "rep", "Thanks for calling about pricing.", 0.5, 2.0, 0.9),
            SegmentRecord(1, "customer", f"My card is {CARD}.", 2.5, 5.0, 0.9),
        ],
        keywords=["Pricing"],
        metrics={"talkRatio": 0.55, "disposition": disposition},
        disposition=disposition,
    )


async def until(condition: object, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def a_webhook(store: Store, url: str, transcript: bool = False) -> Webhook:
    return await Outbox(store).create("acme", url, ["call_ended"], transcript, "CRM", "k1", datetime.now(UTC))


def test_signature_is_stripe_style_and_checked() -> None:
    body, secret = b'{"type":"call_ended"}', "whsec_test"
    header = signature(secret, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=") and len(header.rpartition("=")[2]) == 64
    assert verify(secret, body, header, now=1_700_000_010)
    assert not verify(secret, body + b" ", header, now=1_700_000_010)  # body changed
    assert not verify("whsec_other", body, header, now=1_700_000_010)  # another secret
    assert not verify(secret, body, header, now=1_700_000_000 + 3600)  # a replay an hour later


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://10.1.2.3/x",
        "http://192.168.1.20/x",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
    ],
)
async def test_server_network_refused_by_default(url: str) -> None:
    with pytest.raises(RefusedDestination, match="webhooks may not send there"):
        await resolve(url, WebhookSettings())


async def test_destination_rules() -> None:
    for bad in ("ftp://example.com/x", "http://user:pw@example.com/x", "not a url", "https:///x"):
        with pytest.raises(RefusedDestination):
            await resolve(bad, WebhookSettings())
    assert (await resolve("http://127.0.0.1:9/x", WebhookSettings(allow=["127.0.0.0/8"]))).address == "127.0.0.1"
    assert (await resolve("http://10.1.2.3/x", WebhookSettings(allow_private=True))).address == "10.1.2.3"
    assert (await resolve("http://localhost:9/x", WebhookSettings(allow=["localhost"]))).url.host == "localhost"
    with pytest.raises(RefusedDestination):  # the allow-list lets through what it names, nothing else
        await resolve("http://10.1.2.3/x", WebhookSettings(allow=["127.0.0.0/8"]))
    public = await resolve("https://93.184.215.14/x", WebhookSettings())  # (a public address: no lookup needed)
    assert public.pinned.host == "93.184.215.14"


async def test_delivery_retried_with_backoff_signed_and_recorded(store_url: str) -> None:
    """The receiver fails twice, then takes it: three attempts, the waits doubling; the signature checks out; the
    delivery shows as delivered with its attempts; the transcript is redacted."""
    store = Store(store_url)
    await store.open()
    async with receiving(Receiver(failures=2)) as receiver:
        hook = await a_webhook(store, receiver.url, transcript=True)
        await store.save_call(a_call("CA1", datetime.now(UTC), "meeting_booked"))  # (the end enqueues it)
        sender = WebhookSender(store, LOCAL, "node-a")
        await sender.start()
        try:
            await until(lambda: len(receiver.requests) >= 3)
            deliveries = await Outbox(store).deliveries("acme", hook.id)
            await until(lambda: sender.sent == 1)
        finally:
            await sender.stop()
        [delivery] = await Outbox(store).deliveries("acme", hook.id)
        await store.close()
    assert len(receiver.requests) == 3
    first, second, third = (r.at for r in receiver.requests)
    assert second - first >= 0.18 and third - second >= 0.38  # backoff_s, then twice it
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.last_status == 200
    assert delivery.delivered_at is not None and delivery.to_json()["nextAttemptAt"] is None
    assert deliveries  # (seen while it was being retried too)
    for request in receiver.requests:
        assert verify(hook.secret, request.body, request.headers[SIGNATURE_HEADER.lower()], now=time.time())
        assert request.headers["x-media-server-event"] == "call_ended"
        assert request.headers["x-media-server-delivery"] == f"dlv_{delivery.id}"
        assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    payload = json.loads(receiver.requests[-1].body)
    assert payload["type"] == "call_ended" and payload["id"] == f"dlv_{delivery.id}" and payload["team"] == "acme"
    call = payload["call"]
    assert call["id"] == "CA1" and call["disposition"] == "meeting_booked" and call["keywords"] == ["Pricing"]
    assert call["duration"] == 95.0 and call["metrics"]["talkRatio"] == 0.55
    assert [p["role"] for p in call["participants"]] == ["rep", "customer"]
    assert call["transcript"][1]["text"] == "My card is [CARD]."
    assert CARD not in receiver.requests[-1].body.decode() and "legalHold" not in call


async def test_failing_receiver_given_up_and_redirects_not_followed(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}")
    await store.open()
    settings = LOCAL.model_copy(update={"max_attempts": 2, "backoff_s": 0.05})
    async with receiving(Receiver(status=302)) as receiver:
        hook = await a_webhook(store, receiver.url)
        await store.save_call(a_call("CA1", datetime.now(UTC)))
        sender = WebhookSender(store, settings, "node-a")
        await sender.start()
        try:
            await until(lambda: sender.failed == 2)
        finally:
            await sender.stop()
        [delivery] = await Outbox(store).deliveries("acme", hook.id)
    await store.close()
    assert len(receiver.requests) == 2  # (the Location was not followed)
    assert delivery.status == "failed" and delivery.attempts == 2 and delivery.last_status == 302
    assert "redirects are not followed" in delivery.last_error


async def test_outbox_survives_a_restart(store_url: str) -> None:
    """A delivery queued while the server runs without reaching the receiver is sent by the next server to start on
    the same database."""
    store = Store(store_url)
    await store.open()
    async with receiving(Receiver()) as receiver:
        hook = await a_webhook(store, receiver.url)
    # (the receiver is gone now: the first attempt fails and is retried later)
    await store.save_call(a_call("CA1", datetime.now(UTC)))
    sender = WebhookSender(store, LOCAL.model_copy(update={"backoff_s": 0.3}), "node-a")
    await sender.start()
    await until(lambda: sender.failed == 1)
    await sender.stop()
    await store.close()  # the server stops with the delivery pending

    store = Store(store_url)
    await store.open()
    [pending] = await Outbox(store).deliveries("acme", hook.id)
    assert pending.status == "pending" and pending.attempts == 1 and pending.last_error
    async with receiving(Receiver()) as receiver:
        await store._write(  # (the receiver is back at another port: the admin would update the webhook)
            lambda conn: conn.exec_driver_sql(f"UPDATE webhooks SET url = '{receiver.url}' WHERE id = '{hook.id}'")
        )
        sender = WebhookSender(store, LOCAL, "node-b")
        await sender.start()
        try:
            await until(lambda: sender.sent == 1)
        finally:
            await sender.stop()
    [delivery] = await Outbox(store).deliveries("acme", hook.id)
    await store.close()
    assert delivery.status == "delivered" and delivery.attempts == 2
    assert json.loads(receiver.requests[0].body)["call"]["id"] == "CA1"


async def test_servers_sharing_a_database_send_each_delivery_once(store_url: str) -> None:
    stores = [Store(store_url), Store(store_url)]
    for store in stores:
        await store.open()
    async with receiving(Receiver()) as receiver:
        await a_webhook(stores[0], receiver.url)
        start = datetime.now(UTC)
        for i in range(30):
            await stores[i % 2].save_call(a_call(f"CA{i}", start + timedelta(seconds=i)))
        senders = [WebhookSender(store, LOCAL, f"node-{i}") for i, store in enumerate(stores)]
        for _ in range(4):  # (both claim at once, twice: 20 at a time each)
            await asyncio.gather(*(s.run_once() for s in senders))
        for sender in senders:
            await sender.stop()
    for store in stores:
        await store.close()
    ids = [r.headers["x-media-server-delivery"] for r in receiver.requests]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sum(s.sent for s in senders) == 30


async def test_a_call_ending_live_is_delivered(tmp_path: Path) -> None:
    """Through the call lifecycle: the end's journal commit queues the delivery."""
    async with local_http(tmp_path, []) as local, receiving(Receiver()) as receiver:
        store = local.services.store
        await a_webhook(store, receiver.url)
        live = await local.hold_a_call("live-1")
        await live.end(CallEnd.STOP)
        sender = WebhookSender(store, LOCAL, "node-a")
        for _ in range(100):  # (the journal commits the end a moment later)
            if await sender.run_once() and sender.sent:
                break
            await asyncio.sleep(0.05)
        await sender.stop()
    payload = json.loads(receiver.requests[0].body)
    assert payload["call"]["id"] == "live-1" and payload["call"]["status"] == "completed"


async def test_webhook_api_admin_only_and_private_hosts_refused(tmp_path: Path) -> None:
    async with local_http(tmp_path, [webhooks_api.router, calls_api.router]) as local:
        store = local.services.store
        keys = {role: (await store.create_key("acme", role))[1] for role in (Role.ADMIN, Role.MANAGER, Role.REP)}
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base) as http:

            def auth(role: Role | None) -> dict[str, str]:
                return {"Authorization": f"Bearer {keys[role] if role else local.key}"}

            body = {"url": "http://127.0.0.1:9/hook", "events": ["call_ended"], "includeTranscript": True}
            refused = await http.post("/v1/webhooks", json=body, headers=auth(Role.ADMIN))
            assert refused.status_code == 400 and "127.0.0.1" in refused.json()["detail"]
            for role in (Role.MANAGER, Role.REP, None):  # (None: the ingest key)
                assert (await http.post("/v1/webhooks", json=body, headers=auth(role))).status_code == 403
                assert (await http.get("/v1/webhooks", headers=auth(role))).status_code == 403
            assert (await http.post("/v1/webhooks", json={**body, "events": ["x"]}, headers=auth(Role.ADMIN))).is_error

            local.services.settings.webhooks = LOCAL  # (the server's setting that lets tests reach 127.0.0.1)
            created = await http.post("/v1/webhooks", json=body, headers=auth(Role.ADMIN))
            assert created.status_code == 201, created.text
            hook = created.json()
            assert hook["secret"].startswith("whsec_") and hook["includeTranscript"] is True
            listed = (await http.get("/v1/webhooks", headers=auth(Role.ADMIN))).json()["webhooks"]
            assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

            await store.save_call(a_call("CA1", datetime.now(UTC)))
            path = f"/v1/webhooks/{hook['id']}/deliveries"
            assert (await http.get(path, headers=auth(Role.MANAGER))).status_code == 403
            [delivery] = (await http.get(path, headers=auth(Role.ADMIN))).json()["deliveries"]
            assert delivery["callId"] == "CA1" and delivery["status"] == "pending" and delivery["attempts"] == 0
            assert delivery["nextAttemptAt"] and delivery["deliveredAt"] is None

            assert (await http.delete(f"/v1/webhooks/{hook['id']}", headers=auth(Role.REP))).status_code == 403
            assert (await http.delete(f"/v1/webhooks/{hook['id']}", headers=auth(Role.ADMIN))).status_code == 204
            assert (await http.delete(f"/v1/webhooks/{hook['id']}", headers=auth(Role.ADMIN))).status_code == 404
            assert (await http.get(path, headers=auth(Role.ADMIN))).status_code == 404
        audit = [e.action for e in await store.access_log("acme")]
        assert "webhook_create" in audit and "webhook_delete" in audit


async def test_export_csv_and_jsonl(tmp_path: Path) -> None:
    async with local_http(tmp_path, [webhooks_api.router, calls_api.router]) as local:
        store = local.services.store
        rep = (await store.create_key("acme", Role.REP))[1]
        day = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
        await store.save_call(a_call("CA1", day, "meeting_booked"))
        await store.save_call(a_call("CA2", day + timedelta(hours=2)))
        await store.set_disposition("acme", "CA2", "no_answer")  # (a disposition set after the call)
        await store.save_call(a_call("CA3", day - timedelta(days=3), "old"))  # (before from)
        await store.save_call(a_call("CB1", day, "theirs", team="other"))  # (another team's)
        base = local.ws_url.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {rep}"}) as http:
            query = "from=2026-11-30&to=2026-11-30"
            answer = await http.get(f"/v1/calls/export?format=csv&{query}")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(answer.text)))
            assert [(r["callId"], r["disposition"]) for r in rows] == [("CA2", "no_answer"), ("CA1", "meeting_booked")]
            assert rows[0]["customerPhone"] == "+15551230000" and rows[0]["durationSeconds"] == "95.0"
            assert rows[0]["repName"] == "Dana" and rows[0]["keywords"] == "Pricing"

            answer = await http.get(f"/v1/calls/export?format=jsonl&{query}")
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in answer.text.splitlines()]
            assert [(c["id"], c["disposition"]) for c in lines] == [("CA2", "no_answer"), ("CA1", "meeting_booked")]
            assert all("transcript" not in c for c in lines) and CARD not in answer.text

            assert (await http.get("/v1/calls/export?format=xml")).status_code == 422
            ingest = {"Authorization": f"Bearer {local.key}"}
            assert (await http.get(f"/v1/calls/export?{query}", headers=ingest)).status_code == 403
            assert (await http.get("/v1/calls/CA1")).json()["id"] == "CA1"  # (call ids still reach their route)
        assert "export_calls" in [e.action for e in await store.access_log("acme")]


async def test_migration_0008_goes_down_and_up(store_url: str) -> None:
    store = Store(store_url)
    await store.open()
    await store.close()

    def down_and_up(conn: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
        assert not {"webhooks", "webhook_deliveries"} & set(inspect(conn).get_table_names())
        command.upgrade(cfg, "head")
        assert {"webhooks", "webhook_deliveries"} <= set(inspect(conn).get_table_names())

    engine = create_async_engine(store_url)
    async with engine.begin() as conn:
        await conn.run_sync(down_and_up)
    await engine.dispose()


async def test_real_server_delivers_a_call_and_its_outbox_outlives_a_restart(tmp_path: Path) -> None:
    """``media-server serve`` with the receiver allowed by setting (environment): a call streamed in over L16 and
    ended is delivered; a second call ended while the receiver is down is still pending when the server stops
    (SIGTERM), and the next server process on the same data dir delivers it."""
    env = {
        "MEDIA_SERVER_WEBHOOKS__ALLOW": '["127.0.0.0/8"]',
        "MEDIA_SERVER_WEBHOOKS__POLL_INTERVAL_S": "0.1",
        "MEDIA_SERVER_WEBHOOKS__BACKOFF_S": "0.5",
    }
    srv = await asyncio.to_thread(start_server, tmp_path, env)
    try:
        async with receiving(Receiver()) as receiver:
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
                admin = {"Authorization": f"Bearer {srv.keys['admin']}"}
                created = await http.post("/v1/webhooks", json={"url": receiver.url}, headers=admin)
                assert created.status_code == 201, created.text
                hook = created.json()
            await _a_short_call(srv.ws_url, srv.keys["ingest"], "first")
            await until(lambda: len(receiver.requests) == 1, 20)
            assert verify(
                hook["secret"],
                receiver.requests[0].body,
                receiver.requests[0].headers[SIGNATURE_HEADER.lower()],
                time.time(),
            )
            assert json.loads(receiver.requests[0].body)["call"]["id"] == "first"
        # (the receiver is down now)
        await _a_short_call(srv.ws_url, srv.keys["ingest"], "second")
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:

            async def second() -> dict[str, Any]:
                answer = await http.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=admin)
                return next(d for d in answer.json()["deliveries"] if d["callId"] == "second")

            async with asyncio.timeout(20):
                while (await second())["attempts"] < 1:
                    await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stop_server, srv)
    async with receiving(Receiver()) as receiver:
        # The receiver came back on another port: point the stored webhook at it, as an admin would re-create it.
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'media_server.db'}")
        await store.open()
        [pending] = [d for d in await Outbox(store).deliveries("acme", hook["id"]) if d.call_id == "second"]
        assert pending.status == "pending" and pending.last_error
        await store._write(
            lambda conn: conn.exec_driver_sql(f"UPDATE webhooks SET url = '{receiver.url}' WHERE id = '{hook['id']}'")
        )
        await store.close()
        srv = await asyncio.to_thread(start_server, tmp_path, env)
        try:
            await until(lambda: len(receiver.requests) == 1, 20)
        finally:
            await asyncio.to_thread(stop_server, srv)
    assert json.loads(receiver.requests[0].body)["call"]["id"] == "second"


async def _a_short_call(ws_url: str, key: str, call_id: str) -> None:
    """A call of a second of silence over L16, nobody consenting (nothing transcribed), ended by its stop message."""
    start = {"callSid": call_id, "sampleRate": 16000, "mixType": "mono", "token": key}
    async with connect(f"{ws_url}/v1/ingest/l16") as ws:
        await ws.send(json.dumps({**start, "metadata": {"consent": {"rep": "denied", "customer": "denied"}}}))
        await ws.send(bytes(32000))
        await ws.send(json.dumps({"event": "stop"}))


async def test_body_made_at_the_attempt_honours_a_withdrawal_and_a_deletion(tmp_path: Path) -> None:
    """The outbox names calls only: a customer who withdrew consent before the attempt is sent without identity or
    words; a call deleted before it is not sent at all (``gone``)."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}")
    await store.open()
    async with receiving(Receiver()) as receiver:
        hook = await a_webhook(store, receiver.url, transcript=True)
        await store.save_call(a_call("CA1", datetime.now(UTC)))
        await store.save_call(a_call("CA2", datetime.now(UTC)))
        await store.withdraw_consent("acme", "CA1", "customer")
        await store.delete_call("acme", "CA2")
        sender = WebhookSender(store, LOCAL, "node-a")
        assert await sender.run_once() == 2
        await sender.stop()
        deliveries = {d.call_id: d for d in await Outbox(store).deliveries("acme", hook.id)}
    await store.close()
    assert deliveries["CA1"].status == "delivered" and deliveries["CA2"].status == "gone"
    [request] = receiver.requests
    call = json.loads(request.body)["call"]
    customer = next(p for p in call["participants"] if p["role"] == "customer")
    assert customer["consent"] == "denied" and not (customer["name"] or customer["phone"] or customer["id"])
    assert [s["speaker"] for s in call["transcript"]] == ["rep"] and b"+15551230000" not in request.body


async def test_a_disposition_set_after_the_call_is_sent_to_webhooks_that_ask(tmp_path: Path) -> None:
    """``call_disposition``: a disposition set after the call ended is its own delivery (two changes before it is
    sent: one delivery, with the newest); a webhook of ``call_ended`` alone does not get it."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite'}")
    await store.open()
    outbox = Outbox(store)
    async with receiving(Receiver()) as both, receiving(Receiver()) as ended_only:
        hook = await outbox.create(
            "acme", both.url, ["call_ended", "call_disposition"], False, "", "k1", datetime.now(UTC)
        )
        await a_webhook(store, ended_only.url)
        await store.save_call(a_call("CA1", datetime.now(UTC)))
        await store.set_disposition("acme", "CA1", "callback")
        await store.set_disposition("acme", "CA1", "meeting_booked")
        sender = WebhookSender(store, LOCAL, "node-a")
        assert await sender.run_once() == 3  # (call_ended to both, one call_disposition)
        await store.set_disposition("acme", "CA1", "won")  # (after the last was sent: another)
        assert await sender.run_once() == 1
        await sender.stop()
        events = [d.event for d in reversed(await outbox.deliveries("acme", hook.id))]
    await store.close()
    assert events == ["call_ended", "call_disposition", "call_disposition"]
    bodies = [json.loads(r.body) for r in both.requests]
    assert [(b["type"], b["call"]["disposition"]) for b in bodies][1:] == [
        ("call_disposition", "meeting_booked"),
        ("call_disposition", "won"),
    ]
    assert [json.loads(r.body)["type"] for r in ended_only.requests] == ["call_ended"]
