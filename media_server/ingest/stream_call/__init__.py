"""Our own streaming ingest, ``media_server.v1.MediaServer/StreamCall``: ``start.py`` reads the start message,
``stream.py`` runs one stream (one call). The ``MediaServer`` service itself is the API's (``api/grpc.py``), whose
``StreamCall`` is :func:`~media_server.ingest.stream_call.stream.stream_call`."""
