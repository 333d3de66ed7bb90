"""Reading a PyTorch checkpoint (``torch.save``) into numpy arrays, without torch.

Two layouts exist, and both are read:

- the legacy one (torch < 1.6, and resemblyzer's ``pretrained.pt``): five pickles in a row (magic number,
  protocol version, system info, the object, the list of storage keys), then every storage as an int64
  element count followed by its raw little-endian bytes, in the order of that list;
- the zip one (torch >= 1.6): ``<name>/data.pkl`` holds the object and ``<name>/data/<key>`` each storage.

In both, the object's pickle refers to storages by persistent id (``("storage", torch.FloatStorage, key,
location, numel[, view])``) and builds tensors with ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)``. The unpickler below is restricted: it resolves those few torch names to numpy and
``collections.OrderedDict``, and refuses every other global, so a checkpoint cannot run code. Arrays are
views on a memory map where the layout allows it: nothing is copied until used.
"""

from __future__ import annotations

import collections
import io
import mmap
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# torch's typed storages by name; bfloat16 has no numpy dtype and is widened to float32 on read.
_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "UntypedStorage": "u1",
}


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass
class _Storage:
    """A storage the pickle refers to; its data is attached once the reader finds it."""

    key: str
    kind: _StorageType
    numel: int
    data: Array | None = None


@dataclass(frozen=True)
class _StorageView:
    """A legacy slice of another storage (``view_metadata``)."""

    root: _Storage
    offset: int
    numel: int


def _rebuild_tensor(
    storage: _Storage | _StorageView, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _LazyTensor:
    return _LazyTensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: _LazyTensor, *_: Any) -> _LazyTensor:
    return data


@dataclass(frozen=True)
class _LazyTensor:
    """A tensor whose storage bytes may not have been read yet (legacy files put them after the pickle)."""

    storage: _Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> Array:
        if isinstance(self.storage, _StorageView):
            storage, offset = self.storage.root, self.storage.offset + self.offset
        else:
            storage, offset = self.storage, self.offset
        if storage.data is None:
            raise CheckpointFormatError(f"storage {storage.key} is missing from the file")
        data = storage.data
        if not self.size:
            return data[offset : offset + 1].reshape(())
        if any(s <= 0 for s in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if offset < 0 or last >= data.size:
            raise CheckpointFormatError(f"tensor of size {self.size} runs past its storage {storage.key}")
        item = data.itemsize
        view: Array = np.lib.stride_tricks.as_strided(
            data[offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return view


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader | io.BytesIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which this reader does not allow")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise CheckpointFormatError(f"unexpected persistent id {pid!r}")
        kind, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if not isinstance(kind, _StorageType):
            raise CheckpointFormatError(f"unexpected storage type {kind!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(str(key), kind, int(numel))
        if view is not None:
            _view_key, view_offset, view_numel = view
            return _StorageView(storage, int(view_offset), int(view_numel))
        return storage


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only (numbers, strings, lists, dicts): a legacy checkpoint's header and key pickles, read before
    anything says the file is a checkpoint at all. A class or a persistent id there is refused before it runs."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"checkpoint header refers to {module}.{name}, which this reader does not allow")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("checkpoint header refers to a persistent id, which this reader does not allow")


def _plain_load(file: io.BufferedReader) -> Any:
    return _PlainUnpickler(file).load()


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def _widen(data: Array, kind: _StorageType) -> Array:
    if kind.name == "BFloat16Storage":
        return (data.astype(np.uint32) << 16).view(np.float32)
    return data


def _read_legacy(file: io.BufferedReader, buffer: mmap.mmap) -> Any:
    """The pickles are read from ``file``; the storages that follow them are views on ``buffer``."""
    magic = _plain_load(file)
    if magic != _LEGACY_MAGIC:
        raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
    _plain_load(file)  # protocol version
    sys_info = _plain_load(file)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointFormatError("big-endian checkpoints are not supported")
    unpickler = _Unpickler(file)
    obj = unpickler.load()
    keys = _plain_load(file)
    pos = file.tell()
    for key in keys:
        storage = unpickler.storages.get(key)
        if pos + 8 > len(buffer):
            raise CheckpointFormatError("file ends inside the storages")
        (numel,) = struct.unpack_from("<q", buffer, pos)
        pos += 8
        if storage is None:
            raise CheckpointFormatError(f"storage {key} is not referenced by the checkpoint")
        nbytes = numel * storage.kind.dtype.itemsize
        if pos + nbytes > len(buffer):
            raise CheckpointFormatError(f"storage {key} runs past the end of the file")
        data = np.frombuffer(buffer, dtype=storage.kind.dtype, count=numel, offset=pos)
        storage.data = _widen(data, storage.kind)
        pos += nbytes
    return _materialize(obj)


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise CheckpointFormatError(f"{path}: zip archive without data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pickles[0])))
        obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except KeyError:
                raise CheckpointFormatError(f"{path}: storage {key} is missing") from None
            dtype = storage.kind.dtype
            if storage.kind.name == "UntypedStorage":
                count = len(raw)
            else:
                count = len(raw) // dtype.itemsize
            storage.data = _widen(np.frombuffer(raw, dtype=dtype, count=count), storage.kind)
    return _materialize(obj)


def read_torch_checkpoint(path: str | Path) -> Any:
    """The object ``torch.load(path)`` would return, with every tensor as a (read-only) numpy array."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with path.open("rb") as f:
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return _read_legacy(f, buffer)
        except (pickle.UnpicklingError, EOFError, struct.error) as exc:
            raise CheckpointFormatError(f"{path}: {exc}") from exc
