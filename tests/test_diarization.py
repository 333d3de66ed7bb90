"""Speaker diarization of one mixed channel: resemblyzer's encoder in numpy, and the online diarizer.

The numpy encoder is checked against resemblyzer itself (torch), and its front end against librosa, when
those are installed. The diarizer is checked on scripted two-voice calls sent through a G.711 phone line,
synthesised and scored (DER) by benchmarks/diarization_der.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.diarization_der import der, diarize, synth_call
from models.audio import int16_to_float32, resample
from models.diarization import DiarizationConfig, OnlineDiarizer, VoiceEncoder, locate_resemblyzer_weights
from models.diarization.batcher import EmbeddingBatcher, LaneStopped
from models.diarization.clustering import OnlineClusterer, match_labels, spectral_clustering
from models.diarization.convert import convert
from models.diarization.mel import mel_filters, mel_spectrogram
from models.diarization.torch_checkpoint import CheckpointFormatError, read_torch_checkpoint
from models.diarization.voice_encoder import BUNDLED_WEIGHTS, partial_slices, read_encoder_state
from models.vad import SileroVAD
from tests.synth import SCRIPT, require_flite, speak

# Measured on these calls (benchmarks/diarization_der.py, 8 kHz mu-law, Silero VAD): refined DER 3.4-5.0 %
# for slt+rms, 3.8-7.8 % for the similar male voices rms+awb; per-word labels 4-10 %. Bounds leave margin.
MAX_DER_CLEAR_PAIR = 0.12
MAX_DER_SIMILAR_PAIR = 0.18


def _resemblyzer_checkpoint() -> Path:
    """resemblyzer's own ``pretrained.pt``: the reference the bundled weights were converted from. The server does
    not need resemblyzer; the Makefile installs it (``--no-deps``: it requires torch) for these comparisons only."""
    spec = importlib.util.find_spec("resemblyzer")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "pretrained.pt").is_file():
            return Path(location) / "pretrained.pt"
    if os.environ.get("CI") == "true":
        pytest.fail("resemblyzer is not installed (the reference checkpoint): `make install` installs it")
    pytest.skip("resemblyzer is not installed (the reference checkpoint): `make install` installs it")


def _require(module: str, why: str) -> Any:
    """A reference package the test extra and the Makefile install (librosa, webrtcvad: ``.[test]``; torch: the
    torch stamp ``make pytest`` depends on). Under CI a missing one fails the run instead of skipping."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not installed ({why}): `make pytest` installs it")
        pytest.skip(f"{module} is not installed ({why}): `make pytest` installs it")
    return importlib.import_module(module)


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder()  # the weights bundled with the package


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def _speech(text: str, voice: str) -> np.ndarray:
    require_flite()
    pcm, rate = speak(text, voice)
    return resample(int16_to_float32(pcm), rate, 16000)


# -- the front end -----------------------------------------------------------------------------------


def test_mel_spectrogram_matches_librosa() -> None:
    librosa = _require("librosa", "the reference for the mel front end")
    assert np.allclose(mel_filters(16000, 400, 40), librosa.filters.mel(sr=16000, n_fft=400, n_mels=40), atol=1e-8)
    rng = np.random.default_rng(0)
    for n in (400, 401, 16000, 24001):
        audio = (rng.standard_normal(n) * 0.1).astype(np.float32)
        ours = mel_spectrogram(audio)
        theirs = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
        assert ours.shape == theirs.shape == (1 + n // 160, 40)
        assert np.max(np.abs(ours - theirs)) <= 1e-5 * np.max(theirs)


def test_partial_slices_follow_resemblyzer() -> None:
    # Values from resemblyzer's VoiceEncoder.compute_partial_slices (rate 1.3, min_coverage 0.75).
    assert partial_slices(24000) == ([0], 25600)
    assert partial_slices(100) == ([0], 25600)
    assert partial_slices(80000) == ([0, 77, 154, 231, 308], 74880)
    assert partial_slices(112123) == ([0, 77, 154, 231, 308, 385, 462, 539], 111840)


# -- reading PyTorch checkpoints without torch ---------------------------------------------------------


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


def test_checkpoint_reader_refuses_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": _Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="does not allow"):
        read_torch_checkpoint(path)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(12345) + b"rest")
    with pytest.raises(CheckpointFormatError, match="magic"):
        read_torch_checkpoint(legacy)
    # A legacy file whose very first pickle (the magic number, read before anything else) is code: refused
    # before it runs, not after (it used to run os.system, then fail on the magic number).
    marker = tmp_path / "ran"
    evil_header = tmp_path / "evil-legacy.pt"
    evil_header.write_bytes(pickle.dumps(_Touch(str(marker)), protocol=2) + b"rest")
    with pytest.raises(CheckpointFormatError, match="does not allow"):
        read_torch_checkpoint(evil_header)
    assert not marker.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


def test_checkpoint_reader_matches_torch(tmp_path: Path) -> None:
    torch = _require("torch", "it writes the reference checkpoints")
    weights = _resemblyzer_checkpoint()
    # resemblyzer's file is torch's legacy layout; everything in it, optimizer state included, must match.
    ours = read_torch_checkpoint(weights)
    theirs = torch.load(weights, map_location="cpu", weights_only=False)
    assert ours["step"] == theirs["step"]
    for name, tensor in theirs["model_state"].items():
        assert np.array_equal(ours["model_state"][name], tensor.numpy()), name
    # The zip layout (torch >= 1.6), with the awkward cases: views, strides, half, bfloat16, a Parameter.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "transposed": base.t(),
        "sliced": base[1:3, ::2],
        "half": torch.linspace(-1, 1, 7).half(),
        "bf16": torch.linspace(-1, 1, 5).bfloat16(),
        "long": torch.tensor([1, -2, 3]),
        "scalar": torch.tensor(2.5),
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }
    torch.save(state, tmp_path / "new.pt")
    loaded = read_torch_checkpoint(tmp_path / "new.pt")
    for name, tensor in state.items():
        expected = tensor.detach().float().numpy() if name == "bf16" else tensor.detach().numpy()
        assert np.array_equal(loaded[name], expected), name
    # And a voice encoder loads from a re-saved checkpoint (the configurable path).
    torch.save({"model_state": theirs["model_state"]}, tmp_path / "encoder.pt")
    assert VoiceEncoder(tmp_path / "encoder.pt").path == tmp_path / "encoder.pt"


def test_bundled_weights_are_resemblyzers(tmp_path: Path) -> None:
    # The package runs the encoder from the .npz it ships, found without any configuration...
    assert locate_resemblyzer_weights() == BUNDLED_WEIGHTS and BUNDLED_WEIGHTS.is_file()
    assert (BUNDLED_WEIGHTS.parent / "LICENSE").read_text().count("Apache License") >= 1
    assert VoiceEncoder().path == BUNDLED_WEIGHTS
    # ... and that file is resemblyzer's network, tensor for tensor, rebuilt the same by the converter.
    reference = _resemblyzer_checkpoint()
    original = read_torch_checkpoint(reference)["model_state"]
    bundled = read_encoder_state(BUNDLED_WEIGHTS)
    assert sorted(bundled) == sorted(n for n in original if n.startswith(("lstm.", "linear.")))
    for name, array in bundled.items():
        assert np.array_equal(array, original[name]), name
    assert convert(reference, tmp_path / "again.npz") == sorted(bundled)
    assert (tmp_path / "again.npz").read_bytes() == BUNDLED_WEIGHTS.read_bytes()
    # A configured checkpoint in resemblyzer's own format still loads and embeds the same.
    audio = (np.random.default_rng(3).standard_normal(24000) * 0.1).astype(np.float32)
    assert np.allclose(VoiceEncoder(reference).embed_windows([audio]), VoiceEncoder().embed_windows([audio]))


def test_encoder_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VoiceEncoder(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointFormatError):
        VoiceEncoder(bad)


# -- the encoder against resemblyzer ------------------------------------------------------------------


def test_lstm_matches_torch(encoder: VoiceEncoder) -> None:
    torch = _require("torch", "it runs the reference network")
    state = {name: torch.from_numpy(np.array(value)) for name, value in read_encoder_state(encoder.path).items()}
    lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
    linear = torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    mels = np.random.default_rng(1).random((3, 160, 40)).astype(np.float32) * 5
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(mels))
        raw = torch.relu(linear(hidden[-1]))
        expected = (raw / raw.norm(dim=1, keepdim=True)).numpy()
    ours = encoder.forward(mels)
    assert np.max(np.abs(ours - expected)) < 1e-5


def test_embeddings_match_resemblyzer(encoder: VoiceEncoder) -> None:
    torch = _require("torch", "resemblyzer runs on it")
    for needed in ("librosa", "webrtcvad"):  # resemblyzer's __init__ imports them
        _require(needed, "resemblyzer imports it")
    from resemblyzer import VoiceEncoder as ResemblyzerEncoder
    from resemblyzer.audio import wav_to_mel_spectrogram as resemblyzer_mel

    reference = ResemblyzerEncoder("cpu", verbose=False)
    for voice, text in (("slt", SCRIPT[0]), ("rms", SCRIPT[1]), ("awb", "Okay."), ("kal16", SCRIPT[2])):
        audio = _speech(text, voice)
        ours = encoder.embed_utterance(audio)
        theirs = reference.embed_utterance(audio)
        assert float(ours @ theirs) > 0.999, voice
        # A diarization window is embedded whole (no padding to 1.6 s): resemblyzer's network on its mel.
        window = audio[:24000]
        with torch.no_grad():
            expected = reference(torch.from_numpy(resemblyzer_mel(window)[None])).numpy()[0]
        assert float(encoder.embed_windows([window])[0] @ expected) > 0.999, voice


def test_same_voice_is_nearer_than_another(encoder: VoiceEncoder) -> None:
    a1, a2 = (encoder.embed_utterance(_speech(SCRIPT[i], "slt")) for i in (3, 4))
    b = encoder.embed_utterance(_speech(SCRIPT[5], "rms"))
    assert float(a1 @ a2) > float(a1 @ b) + 0.1


# -- clustering ---------------------------------------------------------------------------------------


def _clusters(seed: int, sizes: tuple[int, ...], spread: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((len(sizes), 64)))
    points, labels = [], []
    for k, n in enumerate(sizes):
        x = centres[k] + spread * rng.standard_normal((n, 64))
        points.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        labels += [k] * n
    return np.concatenate(points).astype(np.float32), np.array(labels)


def test_spectral_clustering_separates_two_groups() -> None:
    x, truth = _clusters(0, (30, 12))
    labels = spectral_clustering(x, 2)
    mapping = match_labels(truth.tolist(), labels.tolist())
    assert sum(mapping[int(lab)] == t for lab, t in zip(labels, truth, strict=True)) >= 41


def test_online_clusterer_names_speakers_in_order_of_appearance() -> None:
    x, truth = _clusters(1, (10, 10))
    order = [*range(6), *range(10, 16), *range(6, 10), *range(16, 20)]  # A A .. B B .. A .. B
    clusterer = OnlineClusterer(max_speakers=2)
    for i in order:
        clusterer.add(x[i])
    assert clusterer.n_speakers == 2
    assert clusterer.labels == [int(truth[i]) for i in order]
    # One voice: never a second speaker, however long.
    one, _ = _clusters(2, (40,))
    mono = OnlineClusterer(max_speakers=2)
    for e in one:
        mono.add(e)
    assert mono.n_speakers == 1


def test_match_labels() -> None:
    assert match_labels([0, 0, 1, 1, 1], [5, 5, 7, 7, 5]) == {5: 0, 7: 1}
    assert match_labels([0, 0, 0], [1, 2, 2]) == {2: 0}


# -- the online diarizer --------------------------------------------------------------------------------


def test_two_voice_call_is_separated(encoder: VoiceEncoder, vad: SileroVAD) -> None:
    require_flite()
    call = synth_call(("slt", "rms"), turns=12, seed=0)
    result = diarize(call, encoder, vad)
    assert result.speakers == 2
    assert result.first_label == "speaker 1"  # whoever spoke first stays speaker 1
    refined = der(call.reference, result.refined)
    per_word = der(call.reference, result.per_word)
    assert refined["der"] < MAX_DER_CLEAR_PAIR, refined
    assert per_word["der"] < MAX_DER_CLEAR_PAIR, per_word
    assert der(call.reference, result.refined, collar=0.25)["der"] < 0.03
    # Every turn is named after the voice that spoke it, and the names alternate like the turns.
    assert {label for _, _, label in result.refined} == {"speaker 1", "speaker 2"}


def test_similar_voices_are_separated(encoder: VoiceEncoder, vad: SileroVAD) -> None:
    require_flite()
    call = synth_call(("rms", "awb"), turns=12, seed=1)  # two American/Scottish male voices
    result = diarize(call, encoder, vad)
    assert result.speakers == 2
    assert result.first_label == "speaker 1"
    assert der(call.reference, result.refined)["der"] < MAX_DER_SIMILAR_PAIR


def test_one_voice_is_one_speaker(encoder: VoiceEncoder, vad: SileroVAD) -> None:
    require_flite()
    call = synth_call(("kal16", "kal16"), turns=12, seed=7)
    result = diarize(call, encoder, vad)
    assert result.speakers == 1
    assert {label for _, _, label in result.refined} == {"speaker 1"}


def test_labels_per_turn_while_the_call_goes_on(encoder: VoiceEncoder, vad: SileroVAD) -> None:
    require_flite()
    call = synth_call(("awb", "slt"), turns=8, seed=2)
    diarizer = OnlineDiarizer(call.rate, encoder=encoder, vad=vad, time_offset=100.0)
    assert diarizer.label_segment(100.0, 101.0) is None  # nothing heard yet
    labels: list[str | None] = []
    packet = call.rate // 50
    turns = iter(call.reference)
    turn = next(turns)
    for i in range(0, call.audio.size, packet):
        diarizer.push(call.audio[i : i + packet])
        now = (i + packet) / call.rate
        if turn is not None and now > turn[1] + 0.8:  # the turn's final transcript would be out by now
            labels.append(diarizer.label_segment(100.0 + turn[0], 100.0 + turn[1]))
            turn = next(turns, None)
    assert labels[0] == "speaker 1"
    expected = ["speaker 1" if who == "S1" else "speaker 2" for _, _, who in call.reference]
    assert sum(a == b for a, b in zip(labels, expected, strict=False)) >= len(expected) - 1, labels
    # Per-word labels are cheap: a word in the middle of each turn.
    for start, end, who in call.reference:
        middle = 100.0 + (start + end) / 2
        assert diarizer.label_segment(middle, middle + 0.3) == ("speaker 1" if who == "S1" else "speaker 2")
    segments = diarizer.refine()
    assert segments[0].start >= 100.0 and all(s.end > s.start for s in segments)


def test_input_formats_and_packet_sizes_do_not_matter(encoder: VoiceEncoder) -> None:
    require_flite()
    call = synth_call(("slt", "rms"), turns=4, seed=3)
    pcm = np.clip(np.round(call.audio * 32768), -32768, 32767).astype(np.int16)
    results = []
    for audio, packet in ((call.audio, 160), (pcm, 160), (call.audio, 1234)):
        diarizer = OnlineDiarizer(call.rate, encoder=encoder)  # energy gate: no VAD given
        for i in range(0, audio.size, packet):
            diarizer.push(audio[i : i + packet])
        results.append(diarizer.refine())
    assert len(results[0]) >= 4
    # A long call's refine clusters a sample of the windows and assigns the rest: same answer here.
    diarizer = OnlineDiarizer(call.rate, encoder=encoder, config=DiarizationConfig(refine_max_windows=8))
    diarizer.push(call.audio)
    assert diarizer.windows > 8
    results.append(diarizer.refine())
    for other in results[1:]:
        assert [s.label for s in other] == [s.label for s in results[0]]
        assert np.allclose([s.start for s in other], [s.start for s in results[0]], atol=0.05)


def test_speech_marked_by_the_caller(encoder: VoiceEncoder) -> None:
    require_flite()
    call = synth_call(("kal16", "slt"), turns=6, seed=4, phone=False)
    diarizer = OnlineDiarizer(call.rate, encoder=encoder, external_speech=True)
    packet = call.rate // 50
    turns = list(call.reference)
    for i in range(0, call.audio.size, packet):
        diarizer.push(call.audio[i : i + packet])
        while turns and turns[0][1] < (i + packet) / call.rate:  # the recognizer reports each segment
            start, end, _ = turns.pop(0)
            diarizer.add_speech(start, end)
    assert diarizer.speakers == ["speaker 1", "speaker 2"]
    assert der(call.reference, diarizer.refine())["der"] < 0.05  # speech exactly as the reference: no miss/FA


def test_long_calls_keep_bounded_audio(encoder: VoiceEncoder) -> None:
    diarizer = OnlineDiarizer(16000, encoder=encoder, config=DiarizationConfig(buffer_s=5.0))
    rng = np.random.default_rng(0)
    burst = np.concatenate([rng.standard_normal(40000) * 0.1, np.zeros(8000)]).astype(np.float32)
    for _ in range(20):  # a minute of 2.5 s noise bursts, which the energy gate takes for speech
        for i in range(0, burst.size, 320):
            diarizer.push(burst[i : i + 320])
        assert diarizer._audio.end - diarizer._audio.start <= 6 * 16000
    assert diarizer.windows == 60  # 2 full windows and a tail window per burst
    assert len(diarizer.regions) == 20


# -- batching across channels --------------------------------------------------------------------------


def test_windows_of_any_length_embedded_together_equal_one_at_a_time(encoder: VoiceEncoder) -> None:
    require_flite()
    speech = _speech(SCRIPT[0], "slt")
    rng = np.random.default_rng(5)
    starts = rng.integers(0, speech.size - 24000, 16)
    lengths = [24000, 24000, *rng.integers(4000, 24001, 14)]  # full 1.5 s windows, and tails of any length
    windows = [speech[a : a + n] for a, n in zip(starts, lengths, strict=True)]
    alone = np.stack([encoder.embed_windows([w])[0] for w in windows])
    together = encoder.embed_windows(windows)
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(encoder.embed_windows(windows, max_batch=5) - alone).max() < 1e-5
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="lengths"):
        encoder.forward(np.zeros((2, 10, 40), dtype=np.float32), [10, 11])


class _CountingEncoder:
    """The encoder, counting the windows of each call (each is one batch here)."""

    def __init__(self, encoder: VoiceEncoder) -> None:
        self.encoder = encoder
        self.calls: list[int] = []

    def embed_windows(self, windows: Sequence[np.ndarray], max_batch: int = 64) -> np.ndarray:
        self.calls.append(len(windows))
        return self.encoder.embed_windows(windows, max_batch)


def test_the_batcher_embeds_the_windows_of_several_channels_in_one_batch(encoder: VoiceEncoder) -> None:
    require_flite()
    calls = [synth_call(("slt", "rms"), turns=4, seed=3), synth_call(("awb", "kal16"), turns=4, seed=5)]
    calls.append(synth_call(("rms", "slt"), turns=4, seed=6, phone=False))  # 16 kHz: rates may differ
    packet = 0.02
    alone = []
    for call in calls:  # each channel embedding its own windows
        diarizer = OnlineDiarizer(call.rate, encoder=encoder)
        step = round(call.rate * packet)
        for i in range(0, call.audio.size, step):
            diarizer.push(call.audio[i : i + step])
        alone.append(diarizer)

    counting = _CountingEncoder(encoder)
    batcher = EmbeddingBatcher(counting, max_batch=256, max_wait_s=600)  # type: ignore[arg-type]
    try:
        lanes = [batcher.attach(OnlineDiarizer(call.rate, encoder=encoder)) for call in calls]
        longest = max(call.audio.size / call.rate for call in calls)
        for k in range(int(longest / packet) + 1):  # the channels' packets interleaved, as they arrive
            for lane, call in zip(lanes, calls, strict=True):
                step = round(call.rate * packet)
                lane.feed(call.audio[k * step : (k + 1) * step])
        # A question needs its channel's windows: every channel's waiting windows go through the encoder at once.
        segments = [lane.run(OnlineDiarizer.segments).result(120) for lane in lanes]
        total = sum(d.windows for d in alone)
        assert counting.calls == [total] and total > max(d.windows for d in alone)
        stats = batcher.stats()
        assert (stats.lanes, stats.batches, stats.windows, stats.queued_s) == (3, 1, total, 0.0)
        for lane, diarizer, mine in zip(lanes, alone, segments, strict=True):
            batched = lane.run(lambda d: d._clusterer.embeddings).result(60)
            assert batched.shape == diarizer._clusterer.embeddings.shape
            assert np.abs(batched - diarizer._clusterer.embeddings).max() < 1e-5
            assert mine == diarizer.segments()
            assert lane.run(OnlineDiarizer.refine).result(60) == diarizer.refine()
            lane.close()
        lanes.clear()
        assert batcher.stats().lanes == 0
    finally:
        batcher.close()


def test_a_lane_that_falls_too_far_behind_stops(encoder: VoiceEncoder) -> None:
    batcher = EmbeddingBatcher(encoder, max_backlog_s=1.0)
    try:
        busy, release = threading.Event(), threading.Event()

        def block(_: Any) -> None:
            busy.set()
            release.wait(30)

        slow = batcher.attach(OnlineDiarizer(8000, encoder=encoder))
        other = batcher.attach(OnlineDiarizer(8000, encoder=encoder))
        blocked = slow.run(block)
        assert busy.wait(10)  # the worker is stuck: audio queues up
        second = np.zeros(8000, dtype=np.int16)
        assert slow.feed(second[:4000]) and other.feed(second[:4000])
        assert not slow.feed(second)  # 1.5 s queued: over the bound, the lane stops and drops its audio
        assert other.feed(second[:2000])
        release.set()
        blocked.result(10)
        with pytest.raises(LaneStopped, match="waited over 1 s"):
            slow.run(OnlineDiarizer.segments).result(10)
        assert other.run(OnlineDiarizer.segments).result(10) == []  # silence: no speech, but it runs on
        assert batcher.stats().lanes_stopped == 1
    finally:
        batcher.close()
    with pytest.raises(LaneStopped, match="closed"):
        other.run(OnlineDiarizer.segments).result(10)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        OnlineDiarizer(0, encoder=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OnlineDiarizer(16000, max_speakers=2, min_speakers=3, encoder=object())  # type: ignore[arg-type]


def test_der_scoring() -> None:
    reference = [(0.0, 2.0, "A"), (2.0, 4.0, "B"), (3.0, 5.0, "A")]  # overlap in 3-4
    assert der(reference, reference)["der"] == 0.0
    assert der(reference, [(0.0, 2.0, "x"), (2.0, 4.0, "y"), (4.0, 5.0, "x")])["miss"] == pytest.approx(1 / 6, abs=0.01)
    swapped = der(reference, [(0.0, 5.0, "z")])
    assert swapped["der"] == pytest.approx(2 / 6, abs=0.01)  # 1 s missed (overlap), 1 s of B called A
    assert der(reference, [])["der"] == 1.0
    assert der([(0.0, 1.0, "A")], [(0.0, 1.0, "A"), (1.0, 2.0, "A")])["false_alarm"] == pytest.approx(1.0, abs=0.01)
