"""Scripted speech from Debian's flite voices, for tests and benchmarks that need known words.

flite is installed by the Makefile (`make system-deps`, run by `make test`). Under CI a missing flite
fails the test run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media_server.client.wav import read_wav

VOICES = ("slt", "rms", "awb", "kal16")

# A sales call's worth of sentences with rare product and competitor names (the keyterms).
KEYTERMS = ("Zorvexa", "Quillmark", "Brightlane", "Nuvora", "Kestrix", "Velocore", "Tandemly", "Orbisync")
SCRIPT = (
    "We are comparing your platform with Zorvexa and Quillmark before we renew.",
    "Our finance team already uses Brightlane for invoicing.",
    "Can Nuvora export the call notes into our CRM?",
    "Last quarter Kestrix offered us a twenty percent discount.",
    "The Velocore integration keeps timing out on large accounts.",
    "Tandemly handles scheduling for the whole sales floor.",
    "Does Orbisync work with the dialer we have today?",
    "If Quillmark matches your price we will probably stay with them.",
    "Honestly Zorvexa was cheaper but the reports were weak.",
    "We could start a pilot with Brightlane and Nuvora next month.",
)


def flite_available() -> bool:
    return shutil.which("flite") is not None


def require_flite() -> None:
    if flite_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("flite is not installed (make system-deps installs it)")
    pytest.skip("flite is not installed: run `make system-deps`")


@cache
def speak(text: str, voice: str = "slt") -> tuple[npt.NDArray[np.int16], int]:
    """``text`` spoken by a flite voice: (mono int16 samples, sample rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True)
        rec = read_wav(out)
    return rec.channels[0], rec.sample_rate
