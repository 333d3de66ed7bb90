"""The gRPC side of the server: our API (``media_server.v1.MediaServer``), the Riva-compatible
``nvidia.riva.asr.RivaSpeechRecognition``, health checking and server reflection, on one ``grpc.aio`` server."""
