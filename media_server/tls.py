"""TLS for every link the server has, from PEM files: one place that turns certificate settings into the contexts
and credentials of the libraries (``ssl`` for SIP and PostgreSQL, grpcio's credentials for our gRPC API and the
recognition workers; uvicorn and redis-py take the file names themselves).

- ``server_context``: a TLS server socket (SIP over TLS); with ``client_ca`` every client must present a
  certificate signed by it (``CERT_REQUIRED``: mutual TLS).
- ``grpc_server_credentials`` / ``grpc_channel_credentials``: both ends of a gRPC link over TLS, mutual where a
  client CA (server) or a client certificate (channel) is given.
- ``postgres_connect_args``: libpq's ``sslmode``, ``sslrootcert``, ``sslcert`` and ``sslkey`` in a
  ``postgresql://`` URL, as asyncpg's ``ssl`` context (SQLAlchemy would hand them to asyncpg as unknown arguments).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import make_url

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server's context: its certificate chain and key; clients' certificates required and checked against
    ``client_ca`` where it is given (else not asked for)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def grpc_server_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """A gRPC server's TLS: its certificate chain and key; with ``client_ca``, clients without a certificate signed
    by it are refused in the handshake."""
    root = client_ca.read_bytes() if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=root, require_client_auth=root is not None
    )


def grpc_channel_credentials(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    """A gRPC client's TLS: the server verified against ``ca`` (else the system's roots), with a client certificate
    where ``cert`` and ``key`` are given."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes() if ca is not None else None,
        private_key=key.read_bytes() if key is not None else None,
        certificate_chain=cert.read_bytes() if cert is not None else None,
    )


_LIBPQ_SSL = ("sslmode", "sslrootcert", "sslcert", "sslkey")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def postgres_connect_args(url: str) -> tuple[str, dict[str, Any]]:
    """A ``postgresql+asyncpg://`` URL without libpq's TLS parameters, and the ``connect_args`` they become.

    ``sslmode`` as libpq reads it: ``disable``, ``allow`` and ``prefer`` as they are; ``require`` encrypts (and,
    as libpq does when a root certificate is given, verifies the server against ``sslrootcert``); ``verify-ca``
    verifies the server's certificate against ``sslrootcert`` (else the system's roots); ``verify-full`` also its
    host name. ``sslcert`` and ``sslkey``: a client certificate. Other URLs come back unchanged."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not any(name in parsed.query for name in _LIBPQ_SSL):
        return url, {}
    query = dict(parsed.query)
    params = {name: query.pop(name) for name in _LIBPQ_SSL if name in query}
    values = {name: value if isinstance(value, str) else value[-1] for name, value in params.items()}
    mode = values.get("sslmode", "prefer")
    if mode not in _SSLMODES:
        raise ValueError(f"database_url: sslmode must be one of {', '.join(_SSLMODES)} (got {mode!r})")
    stripped = parsed.set(query=query).render_as_string(hide_password=False)
    root, cert, key = values.get("sslrootcert"), values.get("sslcert"), values.get("sslkey")
    if mode in ("disable", "allow", "prefer") and cert is None:
        return stripped, {"ssl": mode}
    if mode == "disable":
        return stripped, {"ssl": "disable"}
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=root)
    context.minimum_version = MINIMUM_VERSION
    if mode in ("allow", "prefer", "require") and root is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # encrypted, not authenticated (libpq's require without a root cert)
    elif mode != "verify-full":
        context.check_hostname = False  # verify-ca (and require with a root certificate): the chain, not the name
    if cert is not None:
        context.load_cert_chain(cert, key)
    return stripped, {"ssl": context}
