"""Recognition workers: the decode scheduler in processes of their own (``media-server worker``), reached over gRPC
(``proto/media_server/v1/worker.proto``) by the media nodes' ``RemoteScheduler``."""
