"""Our gRPC API, ``media_server.v1.MediaServer`` (proto/media_server/v1/api.proto): StreamCall, Subscribe, and
unary calls for stored calls, consent and the team's configuration; the gRPC twin of the REST API.

StreamCall is an ingest protocol (``ingest/stream_call``): a call like any other (dashboard, insights, consent,
storage). Subscribe reads the same event bus as ``/v1/events``, resumable from an event id.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date
from typing import Any, TypeAlias
from urllib.parse import quote

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pydantic import ValidationError

from media_server.api.audit import audited
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import REVOKED
from media_server.bus import SubscriberTooSlow
from media_server.calls import views
from media_server.calls.consent_update import ConsentUpdateError, update_consent
from media_server.calls.metadata import Consent
from media_server.calls.views import CONSENT_OF_PB
from media_server.cluster.forward import ask
from media_server.ingest.stream_call.stream import stream_call
from media_server.rpc.auth import abort, presented_key, require_key
from media_server.rpc.refusals import push_back
from media_server.rpc.slots import RETRY_PUSHBACK_MS, StreamSlots
from media_server.services import Services
from media_server.store.records import ChannelRecord, ParticipantRecord
from media_server.store.store import CallFilter
from media_server.teams.config import TeamConfig
from media_server.teams.validation import describe
from media_server.v1 import api_pb2, api_pb2_grpc
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


def add_to_server(server: grpc.aio.Server, services: Services, slots: StreamSlots) -> list[str]:
    api_pb2_grpc.add_MediaServerServicer_to_server(MediaServerServicer(services, slots), server)  # type: ignore[no-untyped-call]
    return [api_pb2.DESCRIPTOR.services_by_name["MediaServer"].full_name]


class MediaServerServicer(api_pb2_grpc.MediaServerServicer):
    def __init__(self, services: Services, slots: StreamSlots) -> None:
        self.services = services
        self.slots = slots

    # -- StreamCall ---------------------------------------------------------------------------------

    async def StreamCall(
        self, requests: AsyncIterator[api_pb2.StreamCallRequest], context: Context
    ) -> AsyncIterator[pb.Event]:
        async with contextlib.aclosing(stream_call(self.services, self.slots, requests, context)) as events:
            async for event in events:
                yield event

    # -- Subscribe -----------------------------------------------------------------------------------

    async def Subscribe(self, request: api_pb2.SubscribeRequest, context: Context) -> AsyncIterator[pb.Event]:
        key = await require_key(self.services, context, "read")
        call_id = request.call_id or None  # (of the key's team: another team's call of this id is not seen)
        after = request.after if request.HasField("after") else None
        target = "" if after is None else f"after={after}"
        await self._audit(key, "subscribe_events", context, call_id or "", target)
        subscription = self.services.journal.subscribe(key.team, call_id, after)
        last_id = after or 0
        revoked: list[bool] = []

        def revoke() -> None:  # the key was revoked: the subscription ends, the client is told why
            revoked.append(True)
            subscription.close()

        held = self.services.sessions.hold(key.id, revoke)
        try:
            async for event in subscription:
                if revoked:
                    break
                yield event
                last_id = event.id or last_id  # (the last one seen: on a shared bus ids are not in order)
                if call_id is not None and event.type == "call_ended":
                    return  # one call: its stream is complete
            if revoked:
                await abort(context, grpc.StatusCode.UNAUTHENTICATED, REVOKED)
        except SubscriberTooSlow:
            push_back(context, RETRY_PUSHBACK_MS)
            await abort(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"subscriber too slow; resubscribe with after={last_id}"
            )
        finally:
            held.release()
            subscription.close()

    # -- stored calls --------------------------------------------------------------------------------

    async def ListCalls(self, request: api_pb2.ListCallsRequest, context: Context) -> api_pb2.ListCallsResponse:
        key = await require_key(self.services, context, "read")
        searched = json_format.MessageToJson(request, indent=None) if request.ByteSize() else ""
        await self._audit(
            key,
            "search_calls" if request.query or request.rep or request.keyword else "list_calls",
            context,
            target=searched,
        )
        limit = request.limit or 50
        if limit > 500:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "limit: at most 500")
        try:
            where = CallFilter(
                text=request.query[:200],
                rep=request.rep[:200],
                keyword=request.keyword[:200],
                since=_day(request.from_date, "from_date"),
                until=_day(request.to_date, "to_date"),
            )
            calls, cursor = await self.services.store.list_calls(key.team, limit, request.cursor or None, where)
        except ValueError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return api_pb2.ListCallsResponse(calls=[views.stored_call_pb(c) for c in calls], next_cursor=cursor or "")

    async def GetCall(self, request: api_pb2.GetCallRequest, context: Context) -> api_pb2.StoredCall:
        key = await require_key(self.services, context, "read")
        await self._audit(key, "read_call", context, request.call_id)
        record = await self.services.store.get_call(key.team, request.call_id)  # a live call: stored so far
        if record is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, "no such call")
        return views.stored_call_pb(record, transcript=True)

    async def DeleteCall(self, request: api_pb2.DeleteCallRequest, context: Context) -> empty_pb2.Empty:
        key = await require_key(self.services, context, "delete")
        await self._audit(key, "delete_call", context, request.call_id)
        live = self.services.calls.live.find(key.team, request.call_id)
        if live is not None or await self.services.held_elsewhere(key.team, request.call_id) is not None:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "the call is live: delete it once it has ended")
        if not await self.services.store.delete_call(key.team, request.call_id):
            await abort(context, grpc.StatusCode.NOT_FOUND, "no such call")
        await self.services.bus.forget(key.team, {request.call_id})
        return empty_pb2.Empty()

    # -- consent -------------------------------------------------------------------------------------

    async def UpdateConsent(
        self, request: api_pb2.UpdateConsentRequest, context: Context
    ) -> api_pb2.UpdateConsentResponse:
        key = await require_key(self.services, context, "ingest")
        consent = CONSENT_OF_PB.get(request.consent)
        await self._audit(
            key,
            "consent_change",
            context,
            request.call_id,
            f"{request.role}={consent.value if consent else request.consent}",
        )
        if consent is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "consent must be a Consent value")
        elsewhere = await self.services.held_elsewhere(key.team, request.call_id)
        if elsewhere is not None:  # (the server holding the call applies it; asked over its REST API)
            return await self._consent_elsewhere(request, consent, elsewhere, context)
        try:
            result = await update_consent(
                self.services.calls, self.services.store, key, request.call_id, request.role, consent, "grpc"
            )
        except ConsentUpdateError as exc:
            code = {
                "not_found": grpc.StatusCode.NOT_FOUND,
                "invalid": grpc.StatusCode.INVALID_ARGUMENT,
                "stored": grpc.StatusCode.FAILED_PRECONDITION,
                "forbidden": grpc.StatusCode.PERMISSION_DENIED,
            }[exc.kind]
            await abort(context, code, exc.message)
        return api_pb2.UpdateConsentResponse(
            call_id=request.call_id,
            live=result.live,
            participants=[views.stored_participant_pb(p) for p in result.participants],
            channels=[views.stored_channel_pb(c) for c in result.channels],
            segments_erased=result.segments_erased,
        )

    async def _audit(self, key: ApiKey, action: str, context: Context, call_id: str = "", target: str = "") -> None:
        peer = context.peer() or ""  # "ipv4:127.0.0.1:54321"
        remote = peer.split(":", 1)[1].rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer
        await audited(self.services, key, action, call_id=call_id, target=target, via="grpc", remote=remote)

    async def _consent_elsewhere(
        self, request: api_pb2.UpdateConsentRequest, consent: Consent, owner: tuple[str, str], context: Context
    ) -> api_pb2.UpdateConsentResponse:
        path = f"/v1/calls/{quote(request.call_id, safe='')}/consent"
        body = {"role": request.role, "consent": consent.value}
        status, answer = await ask(*owner, "PUT", path, presented_key(context) or "", body)
        if status != 200:
            code = {
                400: grpc.StatusCode.INVALID_ARGUMENT,
                401: grpc.StatusCode.UNAUTHENTICATED,
                403: grpc.StatusCode.PERMISSION_DENIED,
                404: grpc.StatusCode.NOT_FOUND,
                409: grpc.StatusCode.FAILED_PRECONDITION,
            }.get(status, grpc.StatusCode.UNAVAILABLE)
            await abort(context, code, str(answer.get("detail", answer)) if isinstance(answer, dict) else str(answer))
        return api_pb2.UpdateConsentResponse(
            call_id=request.call_id,
            live=bool(answer["live"]),
            participants=[views.stored_participant_pb(ParticipantRecord(**p)) for p in answer["participants"]],
            channels=[
                views.stored_channel_pb(ChannelRecord(c["index"], c["speaker"], c["sampleRate"], c["transcribed"]))
                for c in answer["channels"]
            ],
            segments_erased=int(answer.get("segmentsErased", 0)),
        )

    # -- team configuration --------------------------------------------------------------------------

    async def GetTeamConfig(
        self, request: api_pb2.GetTeamConfigRequest, context: Context
    ) -> api_pb2.TeamConfigResponse:
        key = await require_key(self.services, context, "read")
        config = await self.services.teams.config(key.team)
        return _team_config(key.team, config)

    async def SetTeamConfig(
        self, request: api_pb2.SetTeamConfigRequest, context: Context
    ) -> api_pb2.TeamConfigResponse:
        key = await require_key(self.services, context, "configure")
        await self._audit(key, "config_change", context)
        try:
            config = TeamConfig.model_validate(json_format.MessageToDict(request.config))
        except ValidationError as exc:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "invalid team configuration:\n" + "\n".join(describe(exc))
            )
        await self.services.teams.set_config(key.team, config, key.id)
        return _team_config(key.team, config)


# -- conversions -------------------------------------------------------------------------------------


def _day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field}: expected YYYY-MM-DD, got {text!r}") from None


def _team_config(team: str, config: TeamConfig) -> api_pb2.TeamConfigResponse:
    body = struct_pb2.Struct()
    body.update(config.model_dump(mode="json"))
    return api_pb2.TeamConfigResponse(team=team, config=body)


__all__ = ["MediaServerServicer", "add_to_server"]
