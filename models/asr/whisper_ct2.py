"""Whisper on CTranslate2, decoding the utterances of many calls as one batch.

faster-whisper's ``transcribe`` pads every decode to Whisper's 30 s window and decodes one audio at a
time. Here the scheduler hands over the pending work of all calls at once and the engine runs it as
few model calls as possible:

- each utterance is encoded in the shortest window that holds it (10, 15 or 30 s of mel frames):
  the encoder's cost grows with the window, and call utterances are short;
- items that share a window are encoded together and decoded with one batched greedy ``generate``
  (CTranslate2 needs the start-of-transcript token at one position, so prompts of different lengths
  are left-padded with spaces);
- word times and confidences come from one batched cross-attention ``align``.

A short window can send the decoder into a loop (Whisper was trained on 30 s windows): a final that is
too long for its audio or too repetitive, or empty over seconds of voice, is decoded again in the full
window; a run of repeats keeps as many as the audio holds (real repetitions and digits stay, loops go). An
interim is shown trimmed so, and gets the full window only where its trimmed text still repeats itself.
Without timestamps Whisper may also end its transcript early: a decode goes on from its last word when
voice follows it, and a final with far too few words for its voice is decoded again by the beam with length
normalisation (Whisper's own; finals are otherwise decoded without it), or where that too leaves speech out, as
offline decoding does (timestamps, seeking on), and greedily, kept where it says more; a ``segmented`` request
(a long turn's cut) is decoded the offline way only, and its hypothesis says where each of Whisper's segments
starts. A result always depends only on its own audio, window, prompt and prefix, never on what else was in the batch.

faster-whisper is the toolkit (feature extractor, tokenizer, alignment); CTranslate2 runs int8 on the
CPU and float16 or int8_float16 on CUDA.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_ctranslate2_storage, merge_punctuations

from models.asr.engine import DecodeRequest, EngineCapabilities, Hypothesis, Word, text_prefix
from models.asr.loader import resolve_model
from models.audio import MODEL_SAMPLE_RATE

log = logging.getLogger(__name__)

FRAMES_PER_SECOND = 100  # mel frames
WINDOWS = (1000, 1500, 3000)  # mel frames tried, shortest first; 3000 is Whisper's own 30 s window
FINAL_BEAM_SIZE = 5  # finals: beam search (as Whisper's own transcribe); interims stay greedy
# A beam's score is the sum of its tokens' log-probabilities, not normalised by length (with normalisation the beam
# cut twelve spoken "one"s to seven); a final that left speech out is decoded again with Whisper's own
# normalisation (the sum divided by the length), which does not favour ending early.
LENGTH_NORMALISED = 1.0
WINDOW_MARGIN_FRAMES = 50  # an utterance must leave this much of its window empty
MAX_PROMPT_TOKENS = 120  # keyterms + previous text, kept short so that the decoder has room (Whisper allows 223)
MAX_HOTWORD_TOKENS = 80  # the keyterms' share of it; previous text gets the rest
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


@dataclass
class _Item:
    index: int
    request: DecodeRequest
    features: np.ndarray  # [80, frames] of the audio itself
    window: int

    @property
    def frames(self) -> int:
        return int(self.features.shape[-1])

    @property
    def duration(self) -> float:
        return float(self.request.audio.size) / MODEL_SAMPLE_RATE


class WhisperCT2Engine:
    """One Whisper model on one device. ``decode_batch`` is called from the scheduler's worker threads."""

    capabilities = EngineCapabilities(streaming=False, interim_results=True, word_timestamps=True, batching=True)

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        download_root: str | None = None,
        language: str = "en",
        workers: int = 1,
        windows: Sequence[int] = WINDOWS,
        final_beam_size: int = FINAL_BEAM_SIZE,
    ) -> None:
        path, description = resolve_model(model, download_root)
        self.whisper = WhisperModel(
            path, device=device, compute_type=compute_type, cpu_threads=cpu_threads, num_workers=max(1, workers)
        )
        self.model = self.whisper.model
        self.name = description
        self.device = device
        self.windows = tuple(sorted(set(windows) | {3000}))
        self.final_beam_size = max(1, final_beam_size)
        multilingual = self.model.is_multilingual
        self.language = language
        self.tokenizer = Tokenizer(
            self.whisper.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None
        )
        self._space = self.tokenizer.encode(" ")[0]
        log.info("loaded Whisper %s on %s (%s)", description, device, compute_type)

    # -- the batch -----------------------------------------------------------------------------------

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Hypothesis]:
        segmented = [i for i, request in enumerate(requests) if request.segmented]
        if segmented:  # decoded one by one, as offline decoding does; the rest together
            batched = [i for i in range(len(requests)) if i not in segmented]
            out: list[Hypothesis] = [Hypothesis(text="")] * len(requests)
            for i in segmented:
                out[i] = self._transcribe(requests[i])
            if batched:
                for i, hypothesis in zip(batched, self.decode_batch([requests[i] for i in batched]), strict=True):
                    out[i] = hypothesis
            return out
        results = self._decode_once(requests)
        # Whisper without timestamps sometimes ends its transcript early (at a sentence end, with seconds of speech
        # left): decoding goes on from the last word, as faster-whisper's timestamp mode seeks on.
        offsets = [0] * len(requests)
        for _ in range(MAX_CONTINUATIONS):
            rests: list[tuple[int, int, DecodeRequest]] = []
            for i, (request, hypothesis) in enumerate(zip(requests, results, strict=True)):
                start = _stopped_early(request, hypothesis, offsets[i])
                if start is not None:
                    rest = DecodeRequest(audio=request.audio[start:], final=request.final, hotwords=request.hotwords)
                    rests.append((i, start, rest))
            if not rests:
                break
            log.debug("decoding on after an early end in %d item(s)", len(rests))
            for (i, start, _rest), more in zip(rests, self._decode_once([r for _, _, r in rests]), strict=True):
                offsets[i] = start if more.words else len(requests[i].audio)  # nothing more: stop there
                results[i] = _joined(results[i], more, start / MODEL_SAMPLE_RATE)
        collapsed = [
            i
            for i, (request, hypothesis) in enumerate(zip(requests, results, strict=True))
            if request.final and not request.prefix and _collapsed(request, hypothesis)
        ]
        if collapsed:
            log.debug("%d final(s) left speech out: decoding them again", len(collapsed))
            # First by the same beam with Whisper's own length normalisation: without it the beam favours a short
            # transcript, and that is how a final leaves speech out ("Eight account executives and four
            # development reps. We are hiring ..." as "We are hiring ..."); normalised, it says the whole turn in
            # the words offline decoding finds. Kept unless it left speech out too.
            spoken = [i for i in collapsed if results[i].words]
            normed = self._decode_once([requests[i] for i in spoken], LENGTH_NORMALISED) if spoken else []
            recovered: set[int] = set()
            for i, hypothesis in zip(spoken, normed, strict=True):
                if not _collapsed(requests[i], hypothesis):
                    results[i] = hypothesis
                    recovered.add(i)
            # Else decoded again two ways, the offline way (timestamps, 30 s window) and greedily (as an
            # interim), and kept where one says more: on one CPU the offline way lost a card number's sentence
            # that the greedy decode keeps. A final that said nothing is not decoded greedily (over a burst of
            # noise it says "You").
            greedy = self._decode_once([replace(requests[i], final=False) for i in spoken]) if spoken else []
            seconds = dict(zip(spoken, greedy, strict=True))
            for i in collapsed:
                if i not in recovered:
                    # Kept where it says more: a card number read out slowly stretches its digits, and a second
                    # decode wrote one digit fewer.
                    again = self._transcribe(requests[i], speech_only=not results[i].words)
                    if _said(again.text) > _said(results[i].text):
                        results[i] = again
                # The greedy decode only where it says a good deal more (a sentence): on slow digits it repeats
                # some ("0343 43", "8005550199" as "80055501919"), and on the conversations it did nothing else.
                if i in seconds and _said(seconds[i].text) >= _said(results[i].text) + GREEDY_MORE_WORDS:
                    results[i] = seconds[i]
        return results

    def _transcribe(self, request: DecodeRequest, speech_only: bool = False) -> Hypothesis:
        """Decoded as offline decoding does it, with timestamps, going on from where each segment ends
        (faster-whisper's own loop, 30 s window): a ``segmented`` request (a long turn's cut: the segments say
        where a sentence starts), and a final whose transcript holds a fraction of the words its voiced audio
        must have (the decoder ended early and its word times are no guide where). ``speech_only``: a final
        decoded as nothing, where only segments that Whisper holds to be speech count (a burst of noise comes out
        as "You", no-speech probability 0.8).

        Greedy at temperature 0 only, without faster-whisper's fallback to sampling where a window's text
        compresses too well or scores low: a sentence said twice compresses well, and the sampled text that
        replaced it lost sentences (a turn of four utterances, two of them said twice, came out as three
        sentences one time in ten). A run of repeats at the end is judged by the audio instead, as in every
        other decode (``_unsupported_loop_trimmed``)."""
        segments, _info = self.whisper.transcribe(
            request.audio,
            language=self.language if self.model.is_multilingual else None,
            beam_size=1,
            condition_on_previous_text=False,
            vad_filter=False,
            word_timestamps=True,
            hotwords=" ".join(request.hotwords) or None,
            temperature=0.0,
        )
        duration = request.audio.size / MODEL_SAMPLE_RATE
        words: list[Word] = []
        texts: list[str] = []
        starts: list[float] = []
        for segment in segments:
            if speech_only and segment.no_speech_prob > NO_SPEECH_PROB:
                continue
            texts.append(segment.text.strip())
            said = [w for w in segment.words or () if w.word.strip()]
            first = min([segment.start, *(w.start for w in said[:1])])  # its timestamp may come late
            starts.append(round(min(first, duration), 3))
            for w in said:
                start, end = min(w.start, duration), min(w.end, duration)
                words.append(Word(w.word.strip(), round(start, 3), round(end, 3), round(w.probability, 4)))
        kept = _words_loop_trimmed(words, request.audio)
        if len(kept) < len(words):
            log.debug("a loop trimmed from an offline-style decode: %d of %d words kept", len(kept), len(words))
            last = kept[-1].end if kept else 0.0
            return Hypothesis(
                text=" ".join(w.word for w in kept), words=tuple(kept), segments=tuple(t for t in starts if t < last)
            )
        return Hypothesis(text=" ".join(t for t in texts if t), words=tuple(words), segments=tuple(starts))

    def _decode_once(self, requests: Sequence[DecodeRequest], length_penalty: float = 0.0) -> list[Hypothesis]:
        items = []
        for i, request in enumerate(requests):
            features = self.whisper.feature_extractor(request.audio)[..., :-1]
            items.append(_Item(i, request, features, self._window(int(features.shape[-1]))))
        results: list[Hypothesis | None] = [None] * len(items)
        retry: list[_Item] = []
        items.sort(key=_batch_key)
        for (window, _final), group in groupby(items, key=_batch_key):
            members = list(group)
            decoded = self._decode(members, window, length_penalty)
            for item, (hypothesis, suspicious) in zip(members, decoded, strict=True):
                if suspicious and window < 3000:
                    item.window = 3000
                    retry.append(item)
                else:
                    results[item.index] = hypothesis
        for final in (False, True):
            again = [item for item in retry if item.request.final is final]
            if again:
                log.debug("re-decoding %d item(s) in the full window", len(again))
                decoded = self._decode(again, 3000, length_penalty)
                for item, (hypothesis, _suspicious) in zip(again, decoded, strict=True):
                    results[item.index] = hypothesis
        return [r if r is not None else Hypothesis(text="") for r in results]

    def _window(self, frames: int) -> int:
        for window in self.windows:
            if frames + WINDOW_MARGIN_FRAMES <= window:
                return window
        return self.windows[-1]

    def _decode(self, items: list[_Item], window: int, length_penalty: float = 0.0) -> list[tuple[Hypothesis, bool]]:
        """Items of one window, all finals or all interims: finals are decoded with a beam of
        ``final_beam_size`` (conversations, streamed: mixed channels 11.9 -> 10.8 % WER in-process, at a few
        per cent more decode time: tiny.en's decoder is small beside its encoder), interims greedily."""
        batch = np.stack([_fit(item.features, window) for item in items])
        encoded = self.model.encode(get_ctranslate2_storage(batch), to_cpu=False)
        prompts = self._prompts(items)
        longest = max(item.duration for item in items)
        max_length = min(self.whisper.max_length, max(len(p) for p in prompts) + _token_budget(longest) + 1)
        outputs = self.model.generate(
            encoded,
            prompts,
            beam_size=self.final_beam_size if items[0].request.final else 1,
            length_penalty=length_penalty,  # none by default: with it the beam cut twelve spoken "one"s to seven
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )
        eot = self.tokenizer.eot
        texts: list[list[int]] = []
        suspicious: list[bool] = []
        silent: list[bool] = []
        for item, output in zip(items, outputs, strict=True):
            tokens = [t for t in output.sequences_ids[0] if t < eot]
            prefix = self._prefix_tokens(item.request)
            if prefix and tokens[: len(prefix)] != prefix:
                tokens = prefix + tokens  # some versions return the forced prefix, some do not
            seq_len = len(output.sequences_ids[0])
            avg_logprob = output.scores[0] * seq_len / (seq_len + 1) if output.scores else 0.0
            text = self.tokenizer.decode(tokens)
            too_long = len(tokens) > _token_budget(item.duration)
            suspicious.append(too_long or _compression_ratio(text) > MAX_COMPRESSION_RATIO)
            silent.append(output.no_speech_prob > NO_SPEECH_PROB and avg_logprob < -1.0)
            texts.append(tokens[: _token_budget(item.duration)])
        alignments = self.whisper.find_alignment(
            self.tokenizer, texts, encoded, [min(item.frames, window) for item in items]
        )
        out = []
        for item, tokens, alignment, loop, quiet in zip(items, texts, alignments, suspicious, silent, strict=True):
            if quiet or not tokens or not any(ch.isalnum() for ch in self.tokenizer.decode(tokens)):
                # Nothing said (a lone "." over a hum is not speech). But seconds of voice decoded as nothing is
                # a short window's failure like a loop: worth the full window for a final (an interim is redone
                # a second later anyway).
                voiced_s = float(_voiced(item.request.audio).sum()) * 0.02
                out.append((Hypothesis(text=""), item.request.final and voiced_s >= EMPTY_BUT_VOICED_S))
                continue
            tokens, alignment = _unsupported_loop_trimmed(tokens, alignment, item.request.audio, self.tokenizer.decode)
            if loop and not item.request.final:
                # An interim is shown for a second, and its turn is decoded again: a loop at its end, trimmed to
                # what the audio supports, is shown trimmed rather than decoded again in the 30 s window (on the
                # conversations 46 interims a run were, 8 % of all decode time). Only a loop the trim left in
                # (the text still repeats itself) is worth the full window.
                loop = _compression_ratio(self.tokenizer.decode(tokens)) > MAX_COMPRESSION_RATIO
            merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
            words = tuple(
                Word(
                    word=w["word"].strip(),
                    start=round(min(float(w["start"]), item.duration), 3),
                    end=round(min(float(w["end"]), item.duration), 3),
                    confidence=round(float(w["probability"]), 4),
                )
                for w in alignment
                if w["word"].strip()
            )
            out.append((Hypothesis(text=self.tokenizer.decode(tokens).strip(), words=words), loop))
        return out

    def _prefix_tokens(self, request: DecodeRequest) -> list[int]:
        return self.tokenizer.encode(" " + request.prefix.strip()) if request.prefix else []

    def _prompts(self, items: list[_Item]) -> list[list[int]]:
        """Prompts with the start-of-transcript token at one position (CTranslate2 requires it)."""
        tok = self.tokenizer
        contexts = []
        for item in items:
            context: list[int] = []
            for term in item.request.hotwords:  # whole keyterms, first ones first, within their share
                encoded = tok.encode(" " + term.strip())
                if len(context) + len(encoded) > MAX_HOTWORD_TOKENS:
                    break
                context += encoded
            if item.request.prompt:  # then the most recent text that fits
                room = MAX_PROMPT_TOKENS - len(context)
                context += tok.encode(" " + item.request.prompt.strip())[-room:] if room > 0 else []
            contexts.append(context)
        width = max(len(c) for c in contexts)
        prompts = []
        for item, context in zip(items, contexts, strict=True):
            prompt = []
            if width:
                prompt = [tok.sot_prev, *([self._space] * (width - len(context))), *context]
            prompt += [*tok.sot_sequence, tok.no_timestamps, *self._prefix_tokens(item.request)]
            prompts.append(prompt)
        return prompts


def _batch_key(item: _Item) -> tuple[int, bool]:
    """Items decoded together: one window, and finals (beam search) apart from interims (greedy)."""
    return item.window, item.request.final


def _fit(features: np.ndarray, window: int) -> np.ndarray:
    features = features[:, :window]
    return np.pad(features, ((0, 0), (0, window - features.shape[-1])))


def _token_budget(duration: float) -> int:
    """More tokens than anyone says in ``duration`` seconds (fast speech is ~4 tokens/s)."""
    return int(12 + 7 * duration)


GREEDY_MORE_WORDS = 3  # a collapsed final's greedy decode is kept where it says this many more words (digits)
EMPTY_BUT_VOICED_S = 2.0  # an empty final of this much voiced audio is tried again in the full window
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own threshold: a text that compresses better repeats itself
MAX_CONTINUATIONS = 3
MAX_WORD_S = 1.0  # no word takes longer to say
EARLY_END_S = 1.5  # audio left after the last word, at least
EARLY_END_VOICED_S = 0.8  # of which this much voiced: there was more to say


COLLAPSED_WORDS_PER_VOICED_S = 0.8  # a transcript with fewer words than this per voiced second ended early
COLLAPSED_MIN_VOICED_S = 3.0
# A final decoded as nothing over this much voice: "five five" (0.6 s voiced) came out empty in the short window
# and in the 30 s one (tiny.en int8 on an AMD EPYC; a loop on other CPUs), "5 5" from the offline-style decode.
EMPTY_VOICED_S = 0.5
NO_SPEECH_PROB = 0.6  # Whisper's own no_speech_threshold
SKIPPED_S = 2.0  # a word aligned over longer than this (with voice in it) stands for speech the decoder skipped
# Or words stretched over more voice than this in all: the beam skipped what was said there ("Eight account
# executives and four development reps. We are hiring ..." came out as "We are hiring ...", "We" and "are" over 3.5 s
# of voice; "Perfect. How does ..." as "How does ...", "How" over 0.7 s of voice). A word said takes under a second.
STRETCHED_VOICED_S = 0.6


def _collapsed(request: DecodeRequest, hypothesis: Hypothesis) -> bool:
    """Did the decoder leave out speech: far fewer words than the voiced audio holds, or words stretched by the
    alignment over seconds of voice (the decoder skipped what was said there)?"""
    voiced = _voiced(request.audio)
    voiced_s = float(voiced.sum()) * 0.02
    if voiced_s >= COLLAPSED_MIN_VOICED_S and len(hypothesis.words) < COLLAPSED_WORDS_PER_VOICED_S * voiced_s:
        return True
    if not hypothesis.words and voiced_s >= EMPTY_VOICED_S:
        return True
    stretched = 0.0  # voice under words aligned over longer than anyone takes to say one
    for w in hypothesis.words:
        if w.end - w.start <= MAX_WORD_S:
            continue
        voice = float(voiced[int(w.start / 0.02) : int(w.end / 0.02)].sum()) * 0.02
        if w.end - w.start > SKIPPED_S and voice > 1.0:
            return True
        stretched += voice
    return stretched > STRETCHED_VOICED_S


def _stopped_early(request: DecodeRequest, hypothesis: Hypothesis, done: int) -> int | None:
    """The sample to decode on from when a transcript ended well before its voiced audio did."""
    if not hypothesis.words:
        return None
    last = hypothesis.words[-1]  # alignment can stretch a transcript's last word over the audio it left out
    start = int(min(last.end, last.start + MAX_WORD_S) * MODEL_SAMPLE_RATE)
    if start <= done or request.audio.size - start < EARLY_END_S * MODEL_SAMPLE_RATE:
        return None
    voiced = _voiced(request.audio)
    if float(voiced[start // 320 :].sum()) * 0.02 < EARLY_END_VOICED_S:
        return None
    return start


def _joined(head: Hypothesis, tail: Hypothesis, offset: float) -> Hypothesis:
    """``head`` and the decode of the audio after it (from ``offset`` s). Where the two overlap (the first decode's
    last words ended later than their times said), the tail's leading words that spell the end of the head again
    are dropped."""
    if not tail.words:
        return head
    said = _letters(head.text)[-80:]
    drop, spelled = 0, ""
    for k, word in enumerate(tail.words[:8], start=1):
        spelled += _letters(word.word)
        if len(spelled) >= 3 and said.endswith(spelled):
            drop = k
    kept = tail.words[drop:]
    if not kept:
        return head
    text = tail.text[len(text_prefix(tail.text, tail.words[:drop])) :].strip() if drop else tail.text
    words = tuple(Word(w.word, round(w.start + offset, 3), round(w.end + offset, 3), w.confidence) for w in kept)
    return Hypothesis(text=f"{head.text} {text}".strip(), words=head.words + words)


def _said(text: str) -> int:
    """How much a transcript says: its words, each digit one ("4556" says as much as "four five five six"; counted
    in letters, a decode that spelled twelve digits out outweighed one that said the card number's sentence too)."""
    return len(re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text)) + sum(ch.isdigit() for ch in text)


def _letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _loop(tokens: list[int], min_repeats: int = 4) -> tuple[int, int] | None:
    """``(start, period)`` of the same 1-8 tokens repeated at least ``min_repeats`` times at the end."""
    n = len(tokens)
    for period in range(1, 9):
        repeats = 1
        while n - (repeats + 1) * period >= 0 and (
            tokens[n - (repeats + 1) * period : n - repeats * period] == tokens[n - period :]
        ):
            repeats += 1
        if repeats >= min_repeats:
            return n - repeats * period, period
    return None


def _trim_loop(tokens: list[int], min_repeats: int = 4) -> list[int]:
    """Cut a decoder loop (the same 1-8 tokens over and over at the end) down to two repetitions."""
    found = _loop(tokens, min_repeats)
    return tokens if found is None else tokens[: found[0] + 2 * found[1]]


MAX_WORDS_PER_VOICED_SECOND = 6.0  # nobody says more, digits included (fast speech is ~4)
MIN_WORD_S = 0.05  # a word said takes at least this long; a loop's extra repeats are crammed into no time
MIN_VOICED_SHARE = 0.3  # of a word said, the share of its time with voice in it


def _unsupported_loop_trimmed(
    tokens: list[int], alignment: list[dict[str, Any]], audio: np.ndarray, decode: Callable[[list[int]], str]
) -> tuple[list[int], list[dict[str, Any]]]:
    """A run of repeats at the end of a decode keeps as many repeats as the audio supports ("no, no, no, no",
    a card number of ones, "very very"): the run's words that take time and lie in voiced audio, at no more
    than anyone can say per second. A decoder's loop (over silence or noise, or more repeats than there was
    time to say) is cut down to that, and to at least two repeats. No kind of token is special: the judge
    is the audio."""
    found = _loop(tokens)
    if found is None or not alignment:
        return tokens, alignment
    start, period = found
    repeats = (len(tokens) - start) // period
    first_word, seen = len(alignment), 0  # the first word whose tokens begin inside the run
    for i, word in enumerate(alignment):
        if seen >= start:
            first_word = i
            break
        seen += len(word["tokens"])
    spoken = [w for w in alignment[first_word:] if _norm_word(w["word"])]
    voiced = _voiced(audio)
    hop = 0.02
    supported = []
    for w in spoken:
        begin, end = float(w["start"]), float(w["end"])
        frames = voiced[int(begin / hop) : max(int(begin / hop) + 1, int(np.ceil(end / hop)))]
        if end - begin >= MIN_WORD_S and frames.size and frames.mean() >= MIN_VOICED_SHARE:
            supported.append(w)
    voiced_s = sum(float(w["end"]) - float(w["start"]) for w in supported)
    if len(supported) > MAX_WORDS_PER_VOICED_SECOND * max(voiced_s, hop):
        supported = []
    words_per_repeat = max(1.0, len(spoken) / repeats)
    keep = min(repeats, max(2, round(len(supported) / words_per_repeat)))
    if keep == repeats:
        return tokens, alignment
    kept = tokens[: start + keep * period]
    words, seen = [], 0
    for word in alignment:
        if seen + len(word["tokens"]) > len(kept):
            part = kept[seen:]  # the run began inside this word: keep the word's part before the cut
            if part:
                words.append({**word, "tokens": part, "word": decode(part)})
            break
        seen += len(word["tokens"])
        words.append(word)
    return kept, words


def _norm_word(word: str) -> str:
    return word.strip().strip(".,!?;:-'\"")


def _words_loop_trimmed(words: list[Word], audio: np.ndarray) -> list[Word]:
    """``_unsupported_loop_trimmed`` for a transcript in words (the offline-style decode's): each word one token."""
    ids: dict[str, int] = {}
    tokens = [ids.setdefault(_norm_word(w.word).lower(), len(ids)) for w in words]
    alignment = [
        {"word": w.word, "start": w.start, "end": w.end, "tokens": [t]} for w, t in zip(words, tokens, strict=True)
    ]
    kept, _alignment = _unsupported_loop_trimmed(tokens, alignment, audio, lambda _part: "")
    return words[: len(kept)]


def _voiced(audio: np.ndarray, hop: int = 320) -> np.ndarray:
    """Per 20 ms frame: is there voice (energy well above the audio's own floor)?"""
    frames = audio.size // hop
    if frames == 0:
        return np.zeros(0, dtype=bool)
    rms = np.sqrt(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1))
    loud = float(np.percentile(rms, 95))
    floor = float(np.percentile(rms, 10))
    threshold = max(floor * 3.0, loud * 0.1, 1e-3)
    return np.asarray(rms > threshold)


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
