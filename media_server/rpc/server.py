"""One ``grpc.aio`` server beside the HTTP one: the services it is given (our API, each ingest protocol's gRPC face),
health, and reflection when ``[grpc] reflection`` turns it on.

Started and stopped with the app (``app.py``'s lifespan, through ``ingest/listeners.py``); its own port
(``[grpc] port``, 50051 by default).
Streaming RPCs that open calls share one budget of slots (``max_streams``): past it a new stream gets
RESOURCE_EXHAUSTED with a ``grpc-retry-pushback-ms`` trailer, which gRPC's retry policy honours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from media_server.rpc.slots import StreamSlots
from media_server.services import Services
from media_server.tls import grpc_server_credentials

log = logging.getLogger(__name__)

#: Adds a servicer to the server and returns the full names of the services it added; its streams take their slots
#: from the server's one budget (``[grpc] max_streams``).
GrpcFace = Callable[[grpc.aio.Server, Services, StreamSlots], list[str]]


class GrpcServer:
    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    @classmethod
    async def start(cls, services: Services, faces: Sequence[GrpcFace]) -> GrpcServer:
        g = services.settings.grpc
        size = g.max_message_bytes
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)]
        )
        slots = StreamSlots(g.max_streams)
        names = [name for add_to_server in faces for name in add_to_server(server, services, slots)]
        health_servicer = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in ["", *names]:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        if g.reflection:  # (off by default: it answers anyone, key or not)
            reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        host = g.host or services.settings.host
        address = f"[{host}]:{g.port}" if ":" in host else f"{host}:{g.port}"
        tls = services.settings.tls
        if tls.cert is not None and tls.key is not None:  # the HTTPS certificate; mutual TLS with tls.client_ca
            port = server.add_secure_port(address, grpc_server_credentials(tls.cert, tls.key, tls.client_ca))
        else:
            port = server.add_insecure_port(address)
        await server.start()
        secure = " over TLS" + (" (client certificates required)" if tls.client_ca else "") if tls.enabled else ""
        log.info("gRPC API%s on %s:%d (%s)", secure, host, port, ", ".join(names))
        return cls(server, port, health_servicer)

    def status(self) -> dict[str, Any]:
        return {"protocol": "grpc", "port": self.port}

    async def close(self) -> None:
        """NOT_SERVING first (load balancers stop sending), then a short grace for streams to end their calls."""
        self.health.enter_graceful_shutdown()
        await self.server.stop(grace=5.0)
