"""Two-party sales calls for WER benchmarks: synthesised, laid out like a real call, with a timed reference.

    from benchmarks.conversations import build, pyannote_sample
    calls = build()                      # list[Conversation], cached under benchmarks/.cache/conversations
    call = calls[0]
    call.channels["rep"].audio           # int16 at call.channels["rep"].sample_rate (8 kHz)
    call.channels["mixed"].words         # reference words with their times, in the order they were spoken
    call.stereo(), call.mono()           # Recordings: rep left / customer right, and both mixed

The scripts are ``benchmarks/conversation_scripts.py``; each speaker has its own voice (flite's or festival's,
``apt-get install flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k``). Every sentence is
synthesised on its own, trimmed of the synthesiser's leading and trailing silence and set to -20 dBFS of speech
level; the sentences of a turn are joined by 0.3 s of silence, those of a ``tight`` (long) turn by 0.06 s, and any
pause inside a tight turn is shortened so that none exceeds 0.15 s. Turns are placed as the script says (pauses,
interruptions, backchannels), line noise at -60 dBFS is added, and the call is resampled to 8 kHz.

Reference: per turn, the words as the synthesiser was given them (lower case, no punctuation, digits spelled as
words). A word's time is an estimate: its sentence's speech frames are shared among its words in proportion to
their length (good to about 0.3 s). The digits of spoken card and phone numbers are tagged (``RefWord.number``).

``pyannote_sample`` adds a real call: the 30 s two-party phone call shipped in pyannote.audio's wheel (downloaded
with ``pip download`` on first use), with its STM transcript as the reference; mixed channel only.

Generated calls are cached as WAV + JSON under a key that hashes the script and the generator's settings, so a
rerun reads them back; change the script (or ``VERSION``) and they are made again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.conversation_scripts import SCRIPTS, Line, Script, Voice  # noqa: E402
from media_server.client.wav import Recording, read_wav, write_wav  # noqa: E402
from models.audio import Float32Array, Int16Array, float32_to_int16, int16_to_float32, resample  # noqa: E402

VERSION = 1  # bump when the generator's output changes (invalidates the cache)
RATE = 8000  # the calls' sample rate (telephone band)
WORK_RATE = 16000  # synthesis and layout
DEFAULT_CACHE = ROOT / "benchmarks" / ".cache" / "conversations"
LEAD_S = 0.6  # silence before the first turn
TAIL_S = 1.5  # after the last
SENTENCE_GAP_S = 0.3
TIGHT_GAP_S = 0.06
MAX_PAUSE_S = 0.15  # the longest pause a tight turn may hold
FRAME_S = 0.01
SILENCE_BELOW_PEAK_DB = 40.0  # a 10 ms frame this far under a sentence's loudest is silence
SPEECH_DBFS = -20.0
NOISE_DBFS = -60.0
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PYANNOTE_VERSION = "4.0.7"

_PLACEHOLDER = re.compile(r"\{(card|phone):([\d ]+)\}")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True)
class RefWord:
    word: str
    start: float
    end: float
    number: str = ""  # "card:4556737586899855" or "phone:3125550147" on the digits of a spoken number

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    words: tuple[RefWord, ...]
    tight: bool = False

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


@dataclass(frozen=True)
class SpokenNumber:
    kind: str  # card | phone
    digits: str
    speaker: str

    @property
    def tag(self) -> str:
        return f"{self.kind}:{self.digits}"


@dataclass(frozen=True)
class Channel:
    name: str  # rep | customer | mixed
    audio: Int16Array
    sample_rate: int
    turns: tuple[Turn, ...]

    @property
    def words(self) -> list[RefWord]:
        """The reference words of every turn on this channel, in the order they were spoken."""
        return sorted((w for t in self.turns for w in t.words), key=lambda w: w.middle)

    @property
    def duration(self) -> float:
        return self.audio.size / self.sample_rate


@dataclass(frozen=True)
class Conversation:
    name: str
    channels: dict[str, Channel]  # rep, customer, mixed (a real call: mixed only)
    numbers: tuple[SpokenNumber, ...] = ()
    voices: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        return next(iter(self.channels.values())).duration

    @property
    def rate(self) -> int:
        return next(iter(self.channels.values())).sample_rate

    def stereo(self) -> Recording:
        return Recording([self.channels["rep"].audio, self.channels["customer"].audio], self.rate)

    def mono(self) -> Recording:
        return Recording([self.channels["mixed"].audio], self.rate)


# -- text ------------------------------------------------------------------------------------------------


def reference_words(text: str) -> list[str]:
    """Lower case, no punctuation (apostrophes inside words kept), hyphens as spaces."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


def spoken(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` with its number placeholders read out: (what the synthesiser says, [(reference word, tag)])."""
    said: list[str] = []
    words: list[tuple[str, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        said.append(text[pos : m.start()])
        words += [(w, "") for w in reference_words(text[pos : m.start()])]
        groups = m.group(2).split()
        said.append(", ".join(" ".join(DIGITS[int(c)] for c in g) for g in groups))
        tag = f"{m.group(1)}:{''.join(groups)}"
        words += [(DIGITS[int(c)], tag) for g in groups for c in g]
        pos = m.end()
    said.append(text[pos:])
    words += [(w, "") for w in reference_words(text[pos:])]
    return "".join(said), words


def numbers_of(script: Script) -> list[SpokenNumber]:
    return [
        SpokenNumber(m.group(1), m.group(2).replace(" ", ""), line.speaker)
        for line in script.lines
        for m in _PLACEHOLDER.finditer(line.text)
    ]


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# -- audio -----------------------------------------------------------------------------------------------


def synthesise(text: str, voice: Voice) -> Float32Array:
    """``text`` spoken by ``voice`` at 16 kHz, as the synthesiser made it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        if voice.engine == "flite":
            cmd, stdin = ["flite", "-voice", voice.name, "-t", text, "-o", str(out)], None
        else:
            cmd, stdin = ["text2wave", "-eval", f"(voice_{voice.name})", "-o", str(out)], text.encode()
        subprocess.run(cmd, input=stdin, check=True, capture_output=True, timeout=120)
        rec = read_wav(out)
    if rec.duration == 0:
        raise RuntimeError(f"{voice.engine} voice {voice.name} produced no audio (is its voice package installed?)")
    return resample(int16_to_float32(rec.channels[0]), rec.sample_rate, WORK_RATE)


def active_frames(audio: Float32Array, rate: int = WORK_RATE) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame: is it speech (within ``SILENCE_BELOW_PEAK_DB`` of the loudest frame)?"""
    hop = round(FRAME_S * rate)
    n = audio.size // hop
    if n == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    level = 10 * np.log10(power + 1e-12)
    return np.asarray(level > level.max() - SILENCE_BELOW_PEAK_DB)


def trim(audio: Float32Array) -> Float32Array:
    loud = np.flatnonzero(active_frames(audio))
    if loud.size == 0:
        return audio
    hop = round(FRAME_S * WORK_RATE)
    return audio[loud[0] * hop : (loud[-1] + 1) * hop]


def set_level(audio: Float32Array, dbfs: float = SPEECH_DBFS) -> Float32Array:
    """Scale so that the speech frames' RMS is ``dbfs`` (lower if the peaks would clip)."""
    hop = round(FRAME_S * WORK_RATE)
    active = active_frames(audio)
    frames = audio[: active.size * hop].reshape(active.size, hop)[active]
    rms = float(np.sqrt(np.mean(frames.astype(np.float64) ** 2))) if frames.size else 0.0
    if rms == 0.0:
        return audio
    gain = min(10 ** (dbfs / 20) / rms, 0.9 / float(np.max(np.abs(audio))))
    return (audio * gain).astype(np.float32)


def shorten_pauses(audio: Float32Array, max_pause_s: float = MAX_PAUSE_S - 0.03, keep_s: float = 0.08) -> Float32Array:
    """Cut every silence longer than ``max_pause_s`` inside ``audio`` down to ``keep_s`` (half each side)."""
    hop = round(FRAME_S * WORK_RATE)
    active = active_frames(audio)
    keep = np.ones(audio.size, dtype=bool)
    limit, half = round(max_pause_s / FRAME_S), round(keep_s / FRAME_S / 2)
    for start, stop in runs(~active):
        if stop - start > limit:
            keep[(start + half) * hop : (stop - half) * hop] = False
    return audio[keep]


def runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) of every run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def longest_pause(audio: Float32Array, rate: int = WORK_RATE) -> float:
    """The longest silence inside ``audio`` (between its first and last speech frames), seconds."""
    active = active_frames(audio, rate)
    loud = np.flatnonzero(active)
    if loud.size == 0:
        return 0.0
    inner = ~active[loud[0] : loud[-1] + 1]
    return max((b - a for a, b in runs(inner)), default=0) * FRAME_S


def place_words(words: Sequence[tuple[str, str]], audio: Float32Array, offset: float) -> list[RefWord]:
    """Share the speech frames of ``audio`` among ``words`` by their length: estimated word times."""
    speech = np.flatnonzero(active_frames(audio))
    if speech.size == 0 or not words:
        return []
    weights = np.array([len(w) + 2 for w, _ in words], dtype=np.float64)
    bounds = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()]) * speech.size
    out = []
    for i, (word, tag) in enumerate(words):
        first = min(int(bounds[i]), speech.size - 1)
        last = max(first, min(int(np.ceil(bounds[i + 1])) - 1, speech.size - 1))
        start, end = offset + speech[first] * FRAME_S, offset + (speech[last] + 1) * FRAME_S
        out.append(RefWord(word, round(float(start), 3), round(float(end), 3), tag))
    return out


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def render(line: Line, voice: Voice) -> tuple[Float32Array, list[RefWord]]:
    """One line's audio (its sentences joined) and its words, timed from the line's start."""
    gap = np.zeros(round((TIGHT_GAP_S if line.tight else SENTENCE_GAP_S) * WORK_RATE), dtype=np.float32)
    pieces: list[Float32Array] = []
    words: list[RefWord] = []
    t = 0.0
    for i, sentence in enumerate(sentences(line.text)):
        say, ref = spoken(sentence)
        audio = set_level(trim(synthesise(say, voice)))
        if line.tight:
            audio = shorten_pauses(audio)
        if i:
            pieces.append(gap)
            t += gap.size / WORK_RATE
        words += place_words(ref, audio, t)
        pieces.append(audio)
        t += audio.size / WORK_RATE
    return np.concatenate(pieces), words


@dataclass(frozen=True)
class _Placed:
    line: Line
    start: float
    audio: Float32Array
    words: list[RefWord]

    @property
    def end(self) -> float:
        return self.start + self.audio.size / WORK_RATE


def layout(script: Script) -> list[_Placed]:
    """Every line rendered and placed on the call's timeline, as the script says."""
    voices = {"rep": script.rep, "customer": script.customer}
    placed: list[_Placed] = []
    cursor = LEAD_S  # where the call's speech so far ends
    previous: _Placed | None = None  # the last line that was not a backchannel
    for line in script.lines:
        audio, words = render(line, voices[line.speaker])
        if line.during is not None:
            if previous is None:
                raise ValueError(f"{script.name}: a backchannel needs a line before it")
            start = previous.start + line.during * (previous.end - previous.start)
        else:
            start = cursor + line.gap if placed else LEAD_S
        item = _Placed(line, round(start * WORK_RATE) / WORK_RATE, audio, words)
        placed.append(item)
        cursor = max(cursor, item.end)
        if line.during is None:
            previous = item
    check_layout(script.name, placed)
    return placed


def check_layout(name: str, placed: Sequence[_Placed]) -> None:
    """A speaker never overlaps themself; tight turns hold no pause over MAX_PAUSE_S."""
    for speaker in ("rep", "customer"):
        mine = sorted((p for p in placed if p.line.speaker == speaker), key=lambda p: p.start)
        for a, b in pairwise(mine):
            if b.start < a.end + 0.1:
                raise ValueError(f"{name}: {speaker}'s line {b.line.text[:40]!r} starts before their last one ended")
    for p in placed:
        if p.line.tight and longest_pause(p.audio) > MAX_PAUSE_S:
            raise ValueError(f"{name}: tight line {p.line.text[:40]!r} has a {longest_pause(p.audio):.2f} s pause")


def synthesise_call(script: Script) -> Conversation:
    placed = layout(script)
    n = round((max(p.end for p in placed) + TAIL_S) * WORK_RATE)
    seed = int.from_bytes(hashlib.sha256(script.name.encode()).digest()[:4], "little")
    rng = np.random.default_rng(seed)
    tracks: dict[str, Float32Array] = {}
    for speaker in ("rep", "customer"):
        track = rng.normal(0.0, 10 ** (NOISE_DBFS / 20), n).astype(np.float32)
        for p in placed:
            if p.line.speaker == speaker:
                i = round(p.start * WORK_RATE)
                track[i : i + p.audio.size] += p.audio
        tracks[speaker] = track
    tracks["mixed"] = tracks["rep"] + tracks["customer"]
    turns = [
        Turn(p.line.speaker, round(p.start, 3), round(p.end, 3), _shifted(p.words, p.start), p.line.tight)
        for p in placed
    ]
    channels = {
        name: Channel(
            name,
            float32_to_int16(resample(audio, WORK_RATE, RATE)),
            RATE,
            tuple(t for t in turns if name in ("mixed", t.speaker)),
        )
        for name, audio in tracks.items()
    }
    voices = (f"{script.rep.engine}:{script.rep.name}", f"{script.customer.engine}:{script.customer.name}")
    return Conversation(script.name, channels, tuple(numbers_of(script)), voices)


def _shifted(words: Iterable[RefWord], offset: float) -> tuple[RefWord, ...]:
    return tuple(RefWord(w.word, round(w.start + offset, 3), round(w.end + offset, 3), w.number) for w in words)


# -- cache -----------------------------------------------------------------------------------------------


def cache_key(script: Script) -> str:
    settings = {"version": VERSION, "rate": RATE, "script": asdict(script)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def save(conversation: Conversation, directory: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    write_wav(tmp / "stereo.wav", conversation.stereo())
    write_wav(tmp / "mono.wav", conversation.mono())
    reference = {
        "name": conversation.name,
        "voices": list(conversation.voices),
        "numbers": [asdict(n) for n in conversation.numbers],
        "turns": [asdict(t) for t in conversation.channels["mixed"].turns],
    }
    (tmp / "reference.json").write_text(json.dumps(reference, indent=1))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def load(directory: Path) -> Conversation:
    reference = json.loads((directory / "reference.json").read_text())
    turns = [
        Turn(t["speaker"], t["start"], t["end"], tuple(RefWord(**w) for w in t["words"]), t["tight"])
        for t in reference["turns"]
    ]
    stereo, mono = read_wav(directory / "stereo.wav"), read_wav(directory / "mono.wav")
    audio = {"rep": stereo.channels[0], "customer": stereo.channels[1], "mixed": mono.channels[0]}
    channels = {
        name: Channel(name, pcm, stereo.sample_rate, tuple(t for t in turns if name in ("mixed", t.speaker)))
        for name, pcm in audio.items()
    }
    numbers = tuple(SpokenNumber(**n) for n in reference["numbers"])
    return Conversation(reference["name"], channels, numbers, tuple(reference["voices"]))


def build(cache_dir: Path | str = DEFAULT_CACHE, scripts: Sequence[Script] = SCRIPTS) -> list[Conversation]:
    """Every scripted call, synthesised (or read back from ``cache_dir``)."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for script in scripts:
        directory = cache / f"{script.name}-{cache_key(script)}"
        if not (directory / "reference.json").is_file():
            print(f"synthesising {script.name}", file=sys.stderr, flush=True)
            for stale in cache.glob(f"{script.name}-*"):  # an older version of the script
                shutil.rmtree(stale, ignore_errors=True)
            save(synthesise_call(script), directory)
        out.append(load(directory))
    return out


# -- a real call -----------------------------------------------------------------------------------------


def pyannote_sample(cache_dir: Path | str = DEFAULT_CACHE, version: str = PYANNOTE_VERSION) -> Conversation:
    """pyannote.audio's 30 s two-party phone call (16 kHz mono) with its STM transcript as the reference."""
    directory = Path(cache_dir) / f"pyannote-{version}"
    names = ("sample.wav", "sample.rttm", "sample.stm")
    if not all((directory / n).is_file() for n in names):
        _download_sample(directory, version, names)
    rec = read_wav(directory / "sample.wav")
    audio = int16_to_float32(rec.channels[0])
    turns = []
    for row in (directory / "sample.stm").read_text().splitlines():
        fields = row.split(maxsplit=5)
        if len(fields) < 6 or row.startswith(";;"):
            continue
        start, end = float(fields[3]), float(fields[4])
        words = [(w, "") for w in reference_words(fields[5])]
        speech = audio[round(start * rec.sample_rate) : round(end * rec.sample_rate)]
        placed = place_words(words, resample(speech, rec.sample_rate, WORK_RATE), start)
        turns.append(Turn(fields[2], start, end, tuple(placed)))
    channel = Channel("mixed", rec.channels[0], rec.sample_rate, tuple(turns))
    return Conversation(f"pyannote_sample_{version}", {"mixed": channel})


def _download_sample(directory: Path, version: str, names: Sequence[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"pyannote.audio=={version}", "-d", tmp]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        wheel = next(Path(tmp).glob("*.whl"))
        directory.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in names:
                (directory / name).write_bytes(z.read(f"pyannote/audio/sample/{name}"))


def summary(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """Durations and pooled reference words per channel kind."""
    pooled: dict[str, int] = {}
    for c in conversations:
        for name, channel in c.channels.items():
            pooled[name] = pooled.get(name, 0) + len(channel.words)
    return {
        "calls": len(conversations),
        "durations_s": {c.name: round(c.duration, 1) for c in conversations},
        "reference_words": pooled,
    }


if __name__ == "__main__":
    print(json.dumps(summary(build()), indent=2))
