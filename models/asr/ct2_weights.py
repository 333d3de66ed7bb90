"""Reading a CTranslate2 model file (``model.bin``) into numpy arrays, without CTranslate2.

The bundled Whisper weights exist only in CTranslate2's format (no registry package ships them for
torch), so a backend that runs the model elsewhere (torch, on a GPU without CTranslate2's CUDA build)
starts here. The layout is the one ``ctranslate2.specs.model_spec.ModelSpec._serialize`` writes:

    uint32 binary version, string spec name, uint32 revision, uint32 variable count,
    per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 byte count, data;
    uint32 alias count, per alias: string alias, string target.

Strings are uint16 length (with the NUL) + UTF-8 + NUL; integers little-endian. Arrays are views on a
memory map of the file: nothing is copied until used.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

# In the order of CTranslate2's DataType enum; bfloat16 has no numpy dtype and is widened on read.
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


@dataclass
class CT2Model:
    spec: str
    revision: int
    binary_version: int
    variables: dict[str, npt.NDArray[np.generic]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> npt.NDArray[np.generic]:
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, buffer: mmap.mmap) -> None:
        self.buffer = buffer
        self.pos = 0

    def take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buffer):
            raise CT2FormatError("file ends early")
        (value,) = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += size
        return int(value)

    def string(self) -> str:
        length = self.take("H")
        raw = self.buffer[self.pos : self.pos + length]
        self.pos += length
        if len(raw) != length or not raw.endswith(b"\0"):
            raise CT2FormatError("malformed string")
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse ``path`` (a ``model.bin`` or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    with path.open("rb") as f:
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = _Reader(buffer)
    version = r.take("I")
    if version < 5 or version > 6:
        raise CT2FormatError(f"unsupported CTranslate2 binary version {version}")
    model = CT2Model(spec=r.string(), revision=r.take("I"), binary_version=version)
    for _ in range(r.take("I")):
        name = r.string()
        shape = tuple(r.take("I") for _ in range(r.take("B")))
        type_id = r.take("B")
        if type_id >= len(_DTYPES):
            raise CT2FormatError(f"{name}: unknown data type {type_id}")
        nbytes = r.take("I")
        if r.pos + nbytes > len(buffer):
            raise CT2FormatError(f"{name}: data runs past the end of the file")
        dtype = _DTYPES[type_id]
        stored = np.dtype(np.uint16 if dtype == "bfloat16" else dtype)
        count = int(np.prod(shape)) if shape else 1
        if count * stored.itemsize != nbytes:
            raise CT2FormatError(f"{name}: {nbytes} bytes do not hold {shape} of {dtype}")
        array: npt.NDArray[np.generic] = np.frombuffer(buffer, dtype=stored, count=count, offset=r.pos)
        if dtype == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        model.variables[name] = array.reshape(shape)
        r.pos += nbytes
    for _ in range(r.take("I")):
        alias = r.string()
        model.aliases[alias] = r.string()
    return model
