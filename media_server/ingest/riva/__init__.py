"""NVIDIA Riva's speech recognition service (``nvidia.riva.asr.RivaSpeechRecognition``) on the app's gRPC server:
``config.py`` reads a ``RecognitionConfig``, ``audio.py`` the audio, ``results.py`` writes Riva's results,
``servicer.py`` runs ``StreamingRecognize`` and ``Recognize`` (each one call)."""

from media_server.ingest.protocol import IngestProtocol
from media_server.ingest.riva.servicer import add_to_server

PROTOCOL = IngestProtocol("riva", grpc=add_to_server)
