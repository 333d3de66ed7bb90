"""Conversation intelligence: redaction, trackers, coaching cues, call metrics.

spaCy's thinc imports torch whenever torch is installed (``thinc/compat.py``), though a CPU pipeline such as the
bundled one never uses it: that was ~180 MB of memory in every server started from a virtual environment that has
torch for other reasons (the Makefile's, for the torch backend and the tests). spaCy is imported here with torch
hidden, as a server installed without torch imports it; torch itself stays importable (the ``torch`` ASR backend),
and where it is already loaded nothing changes.
"""

import sys

if "thinc" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = None  # type: ignore[assignment]  # (None in sys.modules: "import torch" fails at once)
    try:
        import thinc.compat  # noqa: F401
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
