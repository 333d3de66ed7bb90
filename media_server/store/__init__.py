"""Storage of keys and finalized calls (SQLAlchemy: SQLite by default, PostgreSQL at scale)."""

from media_server.store.records import (
    CallRecord,
    ChannelRecord,
    ParticipantRecord,
    SegmentRecord,
    SpeakerRecord,
)
from media_server.store.store import Store

__all__ = ["CallRecord", "ChannelRecord", "ParticipantRecord", "SegmentRecord", "SpeakerRecord", "Store"]
