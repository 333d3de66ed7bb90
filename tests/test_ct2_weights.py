"""Reading CTranslate2 model files without CTranslate2 (groundwork for a torch backend)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from models.asr.ct2_weights import CT2FormatError, read_ct2_model
from models.asr.loader import bundled_model_path


def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_model(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    """The layout ctranslate2.specs.model_spec writes (binary version 6)."""
    type_ids = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("float16"): 4}
    out = struct.pack("<I", 6) + _string("TestSpec") + struct.pack("<I", 2) + struct.pack("<I", len(variables))
    for name, value in variables.items():
        out += _string(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        out += struct.pack("<B", type_ids[value.dtype]) + struct.pack("<I", value.nbytes) + value.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)


def test_round_trip_of_a_written_model(tmp_path: Path) -> None:
    variables = {
        "encoder/w": np.arange(12, dtype=np.float16).reshape(3, 4),
        "encoder/b": np.array([1.5, -2.0], dtype=np.float32),
        "decoder/heads": np.array([[1, 2], [3, 4]], dtype=np.int16),
        "flag": np.array(7, dtype=np.int8),
    }
    write_model(tmp_path / "model.bin", variables, {"decoder/projection": "encoder/w"})
    model = read_ct2_model(tmp_path)
    assert (model.spec, model.revision, model.binary_version) == ("TestSpec", 2, 6)
    for name, value in variables.items():
        assert model.variables[name].dtype == value.dtype and np.array_equal(model.variables[name], value)
    assert model.get("decoder/projection") is model.variables["encoder/w"]


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    write_model(tmp_path / "model.bin", {"w": np.ones((64, 64), dtype=np.float32)}, {})
    whole = (tmp_path / "model.bin").read_bytes()
    for cut in (3, 20, len(whole) // 2, len(whole) - 3):
        (tmp_path / "model.bin").write_bytes(whole[:cut])
        with pytest.raises(CT2FormatError):
            read_ct2_model(tmp_path)
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + whole[4:])
    with pytest.raises(CT2FormatError, match="version"):
        read_ct2_model(tmp_path)


def test_the_bundled_whisper_weights() -> None:
    model = read_ct2_model(bundled_model_path())
    assert model.spec == "WhisperSpec"
    embeddings = model.get("decoder/projection/weight")  # tied to the token embeddings
    assert embeddings.shape == (51864, 384) and embeddings.dtype == np.float16
    assert np.isfinite(embeddings[:100].astype(np.float32)).all() and np.abs(embeddings[:100]).max() > 0
    layers = {
        name.split("/")[1] for name in model.variables if name.startswith("encoder/layer_") and "norm" not in name
    }
    assert len(layers) == 4, "Whisper tiny has four encoder layers"
    assert model.variables["encoder/conv1/weight"].shape == (384, 80, 3)
