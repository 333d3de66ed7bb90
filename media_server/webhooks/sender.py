"""The webhook sender: a background task of every server that claims due deliveries from the store's outbox
(``store/outbox.py``), sends each as a signed POST and records the attempt.

An attempt is delivered when the receiver answers 2xx; anything else (another status, a redirect, which is not
followed, a refused or unresolvable host, a timeout, a refused connection) is retried after ``backoff_s``, doubled
after each failure up to ``backoff_max_s``, until ``max_attempts`` (then ``failed``). A delivery whose call no
longer exists (deleted or purged before it was sent) is ``gone``. The receiver's answer is not read, only its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from media_server import __version__
from media_server.background import Background
from media_server.config import WebhookSettings
from media_server.store.outbox import Claimed, Outbox
from media_server.store.store import Store
from media_server.webhooks.destinations import RefusedDestination, resolve
from media_server.webhooks.payload import delivery_body
from media_server.webhooks.signing import SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)

BATCH = 20


def _now() -> datetime:
    return datetime.now(UTC)


class WebhookSender:
    def __init__(
        self, store: Store, settings: WebhookSettings, node: str, clock: Callable[[], datetime] = _now
    ) -> None:
        self.store = store
        self.outbox = Outbox(store)
        self.settings = settings
        self.node = node
        self.clock = clock
        self.sent = self.failed = 0
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.timeout_s), follow_redirects=False, trust_env=False
        )
        self._task = Background("webhooks", self._run)
        self._wake = asyncio.Event()

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        return float(min(self.settings.backoff_max_s, self.settings.backoff_s * 2 ** max(0, attempts - 1)))

    async def run_once(self) -> int:
        """Send what is due now; how many deliveries were attempted."""
        # Held past the attempt's worst case (resolution, connect and response timeouts) before another may try.
        hold_s = 3 * self.settings.timeout_s + 30
        claimed = await self.outbox.claim(self.node, self.clock(), hold_s, BATCH)
        if claimed:
            await asyncio.gather(*(self._attempt(c) for c in claimed))
        return len(claimed)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                if await self.run_once() == BATCH:
                    continue  # (more may be due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook deliveries failed; tried again in %g s", self.settings.poll_interval_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval_s):
                    await self._wake.wait()
            self._wake.clear()

    async def _attempt(self, claimed: Claimed) -> None:
        delivery, hook = claimed.delivery, claimed.webhook
        record = await self.store.get_call(delivery.team, delivery.call_id)
        if record is None or record.status == "live":
            await self.outbox.record(delivery.id, "gone", last_status=None, last_error="the call is no longer stored")
            return
        sent_at = self.clock()
        body = json.dumps(
            delivery_body(delivery.event, record, delivery.id, hook.include_transcript, sent_at),
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        status: int | None = None
        error = ""
        try:
            destination = await resolve(hook.url, self.settings, self.settings.timeout_s)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"media-server/{__version__}",
                "Host": destination.url.netloc.decode("ascii"),
                "X-Media-Server-Event": delivery.event,
                "X-Media-Server-Delivery": f"dlv_{delivery.id}",
                SIGNATURE_HEADER: signature(hook.secret, body, int(sent_at.timestamp())),
            }
            extensions = {"sni_hostname": destination.url.host} if destination.url.scheme == "https" else {}
            request = self._client.build_request(
                "POST", destination.pinned, content=body, headers=headers, extensions=extensions
            )
            response = await self._client.send(request, stream=True)  # (its body is never read)
            await response.aclose()
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except RefusedDestination as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = f"timed out after {self.settings.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        now = self.clock()
        if not error:
            await self.outbox.record(delivery.id, "delivered", last_status=status, last_error="", delivered_at=now)
            self.sent += 1
            return
        if delivery.attempts >= self.settings.max_attempts:
            log.warning(
                "webhook %s: delivery %s given up after %d attempts: %s", hook.id, delivery.id, delivery.attempts, error
            )
            await self.outbox.record(delivery.id, "failed", last_status=status, last_error=error)
            self.failed += 1
            return
        retry = now + timedelta(seconds=self.backoff(delivery.attempts))
        await self.outbox.record(delivery.id, "pending", last_status=status, last_error=error, next_attempt_at=retry)
        self.failed += 1
