"""The gRPC transport: API keys on calls (``auth.py``), the one budget of streaming slots (``slots.py``), refusals
as statuses (``refusals.py``), a streaming RPC that feeds a call (``relay.py``), and the server (``server.py``) that
carries what it is given: our API (``api/grpc.py``) and each ingest protocol's gRPC face (``ingest/registry.py``)."""
