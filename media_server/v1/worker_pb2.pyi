from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecodeStreamRequest(_message.Message):
    __slots__ = ("job", "streams")
    JOB_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    job: DecodeJob
    streams: int
    def __init__(self, job: _Optional[_Union[DecodeJob, _Mapping]] = ..., streams: _Optional[int] = ...) -> None: ...

class DecodeJob(_message.Message):
    __slots__ = ("id", "pcm_f32", "pcm_s16", "final", "prompt", "hotwords", "prefix", "segmented", "fairness_key", "batch")
    ID_FIELD_NUMBER: _ClassVar[int]
    PCM_F32_FIELD_NUMBER: _ClassVar[int]
    PCM_S16_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SEGMENTED_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    id: int
    pcm_f32: bytes
    pcm_s16: bytes
    final: bool
    prompt: str
    hotwords: _containers.RepeatedScalarFieldContainer[str]
    prefix: str
    segmented: bool
    fairness_key: str
    batch: bool
    def __init__(self, id: _Optional[int] = ..., pcm_f32: _Optional[bytes] = ..., pcm_s16: _Optional[bytes] = ..., final: _Optional[bool] = ..., prompt: _Optional[str] = ..., hotwords: _Optional[_Iterable[str]] = ..., prefix: _Optional[str] = ..., segmented: _Optional[bool] = ..., fairness_key: _Optional[str] = ..., batch: _Optional[bool] = ...) -> None: ...

class WorkerWord(_message.Message):
    __slots__ = ("word", "start", "end", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start: float
    end: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class WorkerHypothesis(_message.Message):
    __slots__ = ("text", "words", "segments")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    text: str
    words: _containers.RepeatedCompositeFieldContainer[WorkerWord]
    segments: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[WorkerWord, _Mapping]]] = ..., segments: _Optional[_Iterable[float]] = ...) -> None: ...

class DecodeResult(_message.Message):
    __slots__ = ("id", "hypothesis", "dropped", "error", "load", "seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    HYPOTHESIS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: int
    hypothesis: WorkerHypothesis
    dropped: bool
    error: DecodeError
    load: WorkerLoad
    seconds: float
    def __init__(self, id: _Optional[int] = ..., hypothesis: _Optional[_Union[WorkerHypothesis, _Mapping]] = ..., dropped: _Optional[bool] = ..., error: _Optional[_Union[DecodeError, _Mapping]] = ..., load: _Optional[_Union[WorkerLoad, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class DecodeError(_message.Message):
    __slots__ = ("message", "retryable")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    message: str
    retryable: bool
    def __init__(self, message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class WorkerLoad(_message.Message):
    __slots__ = ("queue_depth", "real_time_factor", "busy_fraction", "streams", "in_flight")
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    BUSY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    queue_depth: int
    real_time_factor: float
    busy_fraction: float
    streams: int
    in_flight: int
    def __init__(self, queue_depth: _Optional[int] = ..., real_time_factor: _Optional[float] = ..., busy_fraction: _Optional[float] = ..., streams: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...

class WorkerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("model", "device", "load", "nodes", "batches", "requests", "finals", "interims", "interims_dropped", "mean_batch_size", "mean_batch_seconds", "bytes_in", "bytes_out", "abandoned", "draining")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FINALS_FIELD_NUMBER: _ClassVar[int]
    INTERIMS_FIELD_NUMBER: _ClassVar[int]
    INTERIMS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEAN_BATCH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_IN_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    model: str
    device: str
    load: WorkerLoad
    nodes: int
    batches: int
    requests: int
    finals: int
    interims: int
    interims_dropped: int
    mean_batch_size: float
    mean_batch_seconds: float
    bytes_in: int
    bytes_out: int
    abandoned: int
    draining: bool
    def __init__(self, model: _Optional[str] = ..., device: _Optional[str] = ..., load: _Optional[_Union[WorkerLoad, _Mapping]] = ..., nodes: _Optional[int] = ..., batches: _Optional[int] = ..., requests: _Optional[int] = ..., finals: _Optional[int] = ..., interims: _Optional[int] = ..., interims_dropped: _Optional[int] = ..., mean_batch_size: _Optional[float] = ..., mean_batch_seconds: _Optional[float] = ..., bytes_in: _Optional[int] = ..., bytes_out: _Optional[int] = ..., abandoned: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...
