import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from media_server.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    LINEAR16: _ClassVar[AudioEncoding]
    MULAW: _ClassVar[AudioEncoding]
    ALAW: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
LINEAR16: AudioEncoding
MULAW: AudioEncoding
ALAW: AudioEncoding

class StreamCallRequest(_message.Message):
    __slots__ = ("start", "audio", "dtmf", "finalize", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    DTMF_FIELD_NUMBER: _ClassVar[int]
    FINALIZE_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: StreamStart
    audio: AudioChunk
    dtmf: DtmfDigit
    finalize: Finalize
    stop: StreamStop
    def __init__(self, start: _Optional[_Union[StreamStart, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., dtmf: _Optional[_Union[DtmfDigit, _Mapping]] = ..., finalize: _Optional[_Union[Finalize, _Mapping]] = ..., stop: _Optional[_Union[StreamStop, _Mapping]] = ...) -> None: ...

class StreamStart(_message.Message):
    __slots__ = ("call_id", "encoding", "sample_rate", "channels", "participants", "recognition", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    RECOGNITION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    encoding: AudioEncoding
    sample_rate: int
    channels: _containers.RepeatedScalarFieldContainer[str]
    participants: _containers.RepeatedCompositeFieldContainer[_events_pb2.Participant]
    recognition: RecognitionOptions
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, call_id: _Optional[str] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[_Iterable[str]] = ..., participants: _Optional[_Iterable[_Union[_events_pb2.Participant, _Mapping]]] = ..., recognition: _Optional[_Union[RecognitionOptions, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecognitionOptions(_message.Message):
    __slots__ = ("endpointing_ms", "utterance_end_ms", "interim_results", "keyterms", "redact")
    ENDPOINTING_MS_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_END_MS_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    KEYTERMS_FIELD_NUMBER: _ClassVar[int]
    REDACT_FIELD_NUMBER: _ClassVar[int]
    endpointing_ms: int
    utterance_end_ms: int
    interim_results: bool
    keyterms: _containers.RepeatedScalarFieldContainer[str]
    redact: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, endpointing_ms: _Optional[int] = ..., utterance_end_ms: _Optional[int] = ..., interim_results: _Optional[bool] = ..., keyterms: _Optional[_Iterable[str]] = ..., redact: _Optional[_Iterable[str]] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("channel", "data")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    channel: int
    data: bytes
    def __init__(self, channel: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class DtmfDigit(_message.Message):
    __slots__ = ("channel", "digit")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    channel: int
    digit: str
    def __init__(self, channel: _Optional[int] = ..., digit: _Optional[str] = ...) -> None: ...

class Finalize(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamStop(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("call_id", "after")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    after: int
    def __init__(self, call_id: _Optional[str] = ..., after: _Optional[int] = ...) -> None: ...

class ListCallsRequest(_message.Message):
    __slots__ = ("limit", "cursor", "query", "rep", "keyword", "from_date", "to_date")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REP_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    cursor: str
    query: str
    rep: str
    keyword: str
    from_date: str
    to_date: str
    def __init__(self, limit: _Optional[int] = ..., cursor: _Optional[str] = ..., query: _Optional[str] = ..., rep: _Optional[str] = ..., keyword: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class ListCallsResponse(_message.Message):
    __slots__ = ("calls", "next_cursor")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[StoredCall]
    next_cursor: str
    def __init__(self, calls: _Optional[_Iterable[_Union[StoredCall, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetCallRequest(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class DeleteCallRequest(_message.Message):
    __slots__ = ("call_id",)
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    def __init__(self, call_id: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("channel", "speaker", "text", "start", "end", "confidence", "words")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    text: str
    start: float
    end: float
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[_events_pb2.Word]
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., text: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[_events_pb2.Word, _Mapping]]] = ...) -> None: ...

class StoredCall(_message.Message):
    __slots__ = ("id", "team", "source", "status", "end_reason", "started_at", "ended_at", "duration", "participants", "channels", "speakers", "metadata", "keywords", "metrics", "disposition", "transcript", "snippet")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    id: str
    team: str
    source: str
    status: str
    end_reason: str
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    duration: float
    participants: _containers.RepeatedCompositeFieldContainer[_events_pb2.Participant]
    channels: _containers.RepeatedCompositeFieldContainer[_events_pb2.Channel]
    speakers: _containers.RepeatedCompositeFieldContainer[_events_pb2.SpeakerStats]
    metadata: _containers.ScalarMap[str, str]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    metrics: _events_pb2.CallMetrics
    disposition: str
    transcript: _containers.RepeatedCompositeFieldContainer[Segment]
    snippet: str
    def __init__(self, id: _Optional[str] = ..., team: _Optional[str] = ..., source: _Optional[str] = ..., status: _Optional[str] = ..., end_reason: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[float] = ..., participants: _Optional[_Iterable[_Union[_events_pb2.Participant, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[_events_pb2.Channel, _Mapping]]] = ..., speakers: _Optional[_Iterable[_Union[_events_pb2.SpeakerStats, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., keywords: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Union[_events_pb2.CallMetrics, _Mapping]] = ..., disposition: _Optional[str] = ..., transcript: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., snippet: _Optional[str] = ...) -> None: ...

class UpdateConsentRequest(_message.Message):
    __slots__ = ("call_id", "role", "consent")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    role: str
    consent: _events_pb2.Consent
    def __init__(self, call_id: _Optional[str] = ..., role: _Optional[str] = ..., consent: _Optional[_Union[_events_pb2.Consent, str]] = ...) -> None: ...

class UpdateConsentResponse(_message.Message):
    __slots__ = ("call_id", "live", "participants", "channels", "segments_erased")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_ERASED_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    live: bool
    participants: _containers.RepeatedCompositeFieldContainer[_events_pb2.Participant]
    channels: _containers.RepeatedCompositeFieldContainer[_events_pb2.Channel]
    segments_erased: int
    def __init__(self, call_id: _Optional[str] = ..., live: _Optional[bool] = ..., participants: _Optional[_Iterable[_Union[_events_pb2.Participant, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[_events_pb2.Channel, _Mapping]]] = ..., segments_erased: _Optional[int] = ...) -> None: ...

class GetTeamConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetTeamConfigRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: _struct_pb2.Struct
    def __init__(self, config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TeamConfigResponse(_message.Message):
    __slots__ = ("team", "config")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    team: str
    config: _struct_pb2.Struct
    def __init__(self, team: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
