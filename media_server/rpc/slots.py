"""Streaming RPCs that open calls share one budget of slots (``[grpc] max_streams``): past it a new stream gets
RESOURCE_EXHAUSTED with a ``grpc-retry-pushback-ms`` trailer, which gRPC's retry policy honours."""

from __future__ import annotations

import grpc

from media_server.rpc.auth import abort
from media_server.rpc.refusals import push_back

RETRY_PUSHBACK_MS = 1000


class StreamSlots:
    """Concurrent streaming calls over gRPC; a new one past the limit is refused, never queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    async def take(self, context: grpc.aio.ServicerContext[object, object]) -> None:
        if self.used >= self.limit:
            push_back(context, RETRY_PUSHBACK_MS)
            await abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this server is at its limit of {self.limit} streaming calls; retry in {RETRY_PUSHBACK_MS} ms",
            )
        self.used += 1

    def give(self) -> None:
        self.used = max(0, self.used - 1)
