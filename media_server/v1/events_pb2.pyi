import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_UNKNOWN: _ClassVar[Consent]
    CONSENT_GRANTED: _ClassVar[Consent]
    CONSENT_DENIED: _ClassVar[Consent]
CONSENT_UNKNOWN: Consent
CONSENT_GRANTED: Consent
CONSENT_DENIED: Consent

class Event(_message.Message):
    __slots__ = ("id", "type", "call_id", "team", "time", "call_started", "transcript", "call_ended", "error", "dtmf", "speech_started", "utterance_end", "call_updated", "keyword_hit", "cue", "entity")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CALL_STARTED_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    CALL_ENDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DTMF_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_END_FIELD_NUMBER: _ClassVar[int]
    CALL_UPDATED_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_HIT_FIELD_NUMBER: _ClassVar[int]
    CUE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    call_id: str
    team: str
    time: _timestamp_pb2.Timestamp
    call_started: CallStarted
    transcript: Transcript
    call_ended: CallEnded
    error: Error
    dtmf: Dtmf
    speech_started: SpeechStarted
    utterance_end: UtteranceEnd
    call_updated: CallUpdated
    keyword_hit: KeywordHit
    cue: Cue
    entity: Entity
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., call_id: _Optional[str] = ..., team: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., call_started: _Optional[_Union[CallStarted, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., call_ended: _Optional[_Union[CallEnded, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., dtmf: _Optional[_Union[Dtmf, _Mapping]] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., utterance_end: _Optional[_Union[UtteranceEnd, _Mapping]] = ..., call_updated: _Optional[_Union[CallUpdated, _Mapping]] = ..., keyword_hit: _Optional[_Union[KeywordHit, _Mapping]] = ..., cue: _Optional[_Union[Cue, _Mapping]] = ..., entity: _Optional[_Union[Entity, _Mapping]] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("role", "id", "name", "phone", "email", "consent", "transcribed")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBED_FIELD_NUMBER: _ClassVar[int]
    role: str
    id: str
    name: str
    phone: str
    email: str
    consent: Consent
    transcribed: bool
    def __init__(self, role: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., consent: _Optional[_Union[Consent, str]] = ..., transcribed: _Optional[bool] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("index", "speaker", "sample_rate", "transcribed", "on_hold")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBED_FIELD_NUMBER: _ClassVar[int]
    ON_HOLD_FIELD_NUMBER: _ClassVar[int]
    index: int
    speaker: str
    sample_rate: int
    transcribed: bool
    on_hold: bool
    def __init__(self, index: _Optional[int] = ..., speaker: _Optional[str] = ..., sample_rate: _Optional[int] = ..., transcribed: _Optional[bool] = ..., on_hold: _Optional[bool] = ...) -> None: ...

class CallStarted(_message.Message):
    __slots__ = ("source", "participants", "channels", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    source: str
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CallUpdated(_message.Message):
    __slots__ = ("participants", "channels", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("word", "start", "end", "confidence", "speaker")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    word: str
    start: float
    end: float
    confidence: float
    speaker: str
    def __init__(self, word: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., confidence: _Optional[float] = ..., speaker: _Optional[str] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("channel", "speaker", "is_final", "text", "words", "start", "end", "segment", "confidence", "stable_text", "stability", "speaker_label", "speech_final")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    STABLE_TEXT_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_LABEL_FIELD_NUMBER: _ClassVar[int]
    SPEECH_FINAL_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    is_final: bool
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    start: float
    end: float
    segment: int
    confidence: float
    stable_text: str
    stability: float
    speaker_label: str
    speech_final: bool
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., is_final: _Optional[bool] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., segment: _Optional[int] = ..., confidence: _Optional[float] = ..., stable_text: _Optional[str] = ..., stability: _Optional[float] = ..., speaker_label: _Optional[str] = ..., speech_final: _Optional[bool] = ...) -> None: ...

class UtteranceEnd(_message.Message):
    __slots__ = ("channel", "speaker", "last_word_end")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    LAST_WORD_END_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    last_word_end: float
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., last_word_end: _Optional[float] = ...) -> None: ...

class SpeakerStats(_message.Message):
    __slots__ = ("speaker", "talk_time", "word_count")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TALK_TIME_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    speaker: str
    talk_time: float
    word_count: int
    def __init__(self, speaker: _Optional[str] = ..., talk_time: _Optional[float] = ..., word_count: _Optional[int] = ...) -> None: ...

class CallEnded(_message.Message):
    __slots__ = ("status", "reason", "duration", "speakers", "metrics")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    status: str
    reason: str
    duration: float
    speakers: _containers.RepeatedCompositeFieldContainer[SpeakerStats]
    metrics: CallMetrics
    def __init__(self, status: _Optional[str] = ..., reason: _Optional[str] = ..., duration: _Optional[float] = ..., speakers: _Optional[_Iterable[_Union[SpeakerStats, _Mapping]]] = ..., metrics: _Optional[_Union[CallMetrics, _Mapping]] = ...) -> None: ...

class CallMetrics(_message.Message):
    __slots__ = ("talk_time", "talk_ratio", "longest_monologue", "longest_customer_story", "interactivity", "patience", "questions", "words_per_minute", "interruptions", "filler_rate", "tracker_hits", "disposition")
    class TalkTimeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class QuestionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class WordsPerMinuteEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class InterruptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class FillerRateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class TrackerHitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TALK_TIME_FIELD_NUMBER: _ClassVar[int]
    TALK_RATIO_FIELD_NUMBER: _ClassVar[int]
    LONGEST_MONOLOGUE_FIELD_NUMBER: _ClassVar[int]
    LONGEST_CUSTOMER_STORY_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVITY_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    WORDS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    FILLER_RATE_FIELD_NUMBER: _ClassVar[int]
    TRACKER_HITS_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    talk_time: _containers.ScalarMap[str, float]
    talk_ratio: float
    longest_monologue: float
    longest_customer_story: float
    interactivity: float
    patience: float
    questions: _containers.ScalarMap[str, int]
    words_per_minute: _containers.ScalarMap[str, float]
    interruptions: _containers.ScalarMap[str, int]
    filler_rate: _containers.ScalarMap[str, float]
    tracker_hits: _containers.ScalarMap[str, int]
    disposition: str
    def __init__(self, talk_time: _Optional[_Mapping[str, float]] = ..., talk_ratio: _Optional[float] = ..., longest_monologue: _Optional[float] = ..., longest_customer_story: _Optional[float] = ..., interactivity: _Optional[float] = ..., patience: _Optional[float] = ..., questions: _Optional[_Mapping[str, int]] = ..., words_per_minute: _Optional[_Mapping[str, float]] = ..., interruptions: _Optional[_Mapping[str, int]] = ..., filler_rate: _Optional[_Mapping[str, float]] = ..., tracker_hits: _Optional[_Mapping[str, int]] = ..., disposition: _Optional[str] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Dtmf(_message.Message):
    __slots__ = ("channel", "digit")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    channel: int
    digit: str
    def __init__(self, channel: _Optional[int] = ..., digit: _Optional[str] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("channel", "speaker", "start")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    start: float
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., start: _Optional[float] = ...) -> None: ...

class KeywordHit(_message.Message):
    __slots__ = ("channel", "speaker", "keyword", "category", "start", "end", "segment", "text", "char_start", "char_end")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    keyword: str
    category: str
    start: float
    end: float
    segment: int
    text: str
    char_start: int
    char_end: int
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., keyword: _Optional[str] = ..., category: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., segment: _Optional[int] = ..., text: _Optional[str] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("channel", "speaker", "label", "text", "start", "end", "segment", "char_start", "char_end")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    channel: int
    speaker: str
    label: str
    text: str
    start: float
    end: float
    segment: int
    char_start: int
    char_end: int
    def __init__(self, channel: _Optional[int] = ..., speaker: _Optional[str] = ..., label: _Optional[str] = ..., text: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., segment: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ...) -> None: ...

class Cue(_message.Message):
    __slots__ = ("kind", "message", "speaker", "channel", "time", "detail")
    class DetailEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    speaker: str
    channel: int
    time: float
    detail: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ..., speaker: _Optional[str] = ..., channel: _Optional[int] = ..., time: _Optional[float] = ..., detail: _Optional[_Mapping[str, str]] = ...) -> None: ...
