"""Read PyTorch checkpoints (and PySlowFast's Caffe2 ``.pkl`` blobs) with the standard library
and NumPy alone.

Three layouts are understood:

* the zip format ``torch.save`` writes since PyTorch 1.6 (``.pyth``/``.pt``/``.pth``): a zip whose
  ``<prefix>/data.pkl`` is a pickle (protocol 2) in which every storage is a persistent id
  ``('storage', storage_type, key, location, numel)`` and every tensor is a call to
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``; the raw bytes of
  storage ``key`` are the zip member ``<prefix>/data/<key>``;
* the older single-stream format (``_use_new_zipfile_serialization=False``): magic number,
  protocol version and system info pickles, the object pickle, the list of storage keys, then
  each storage as an int64 element count followed by its bytes;
* Caffe2 pickles (PySlowFast's ``.pkl`` model zoo files): a pickled dict of NumPy arrays, usually
  under ``blobs``, written by Python 2 (read with ``encoding='latin1'``).

Unpickling is restricted: only tensor/storage rebuilders, ``OrderedDict``, a few NumPy array
constructors and plain builtins are resolved. Any other class named in the file becomes an inert
:class:`OpaqueObject` that records its name, so no code from the file is ever run. Tensors are
read lazily (:class:`LazyTensor`), so an optimizer state stored next to the weights costs nothing.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["TorchFormatError", "LazyTensor", "OpaqueObject", "detect_format", "read_checkpoint",
           "materialize"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# storage class name -> numpy dtype name ("bfloat16" is widened to float32 when read)
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}
_ITEMSIZE = {"bfloat16": 2}


class TorchFormatError(ValueError):
    """A file that is not a readable PyTorch / Caffe2 checkpoint; the message says what it is."""


class OpaqueObject(dict):
    """Stands in for any class the restricted unpickler does not resolve (a config object, an
    optimizer class ...). It accepts construction, state and items without running any code."""

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<opaque {self.qualified_name}>"


def _opaque_class(module: str, name: str) -> type:
    return type(name, (OpaqueObject,), {"qualified_name": f"{module}.{name}"})


class _StorageRef:
    """One storage of the file: its key, element dtype and (for old views) element offset."""

    def __init__(self, key: str, dtype: str, numel: int, offset: int = 0) -> None:
        self.key, self.dtype, self.numel, self.offset = key, dtype, numel, offset


class LazyTensor:
    """A tensor of the file, read on :meth:`numpy`. ``shape``/``dtype`` are known without reading.

    ``dtype`` is the stored type (``bfloat16`` included); :meth:`numpy` returns a contiguous
    array with the tensor's shape, bfloat16 widened exactly to float32.
    """

    def __init__(self, storage: _StorageRef, offset: int, shape: Sequence[int],
                 stride: Sequence[int], read_bytes: Callable[[str], bytes]) -> None:
        self.storage = storage
        self.offset = storage.offset + int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.stride = tuple(int(s) for s in stride)
        self.dtype = storage.dtype
        self._read_bytes = read_bytes

    def numpy(self) -> np.ndarray:
        raw = self._read_bytes(self.storage.key)
        if self.dtype == "bfloat16":
            flat = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            flat = np.frombuffer(raw, dtype=np.dtype(self.dtype).newbyteorder("<"))
        if any(s == 0 for s in self.shape):
            return np.zeros(self.shape, dtype=flat.dtype.newbyteorder("="))
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
        if self.offset < 0 or last >= flat.size:
            raise TorchFormatError(
                f"tensor of shape {list(self.shape)} (offset {self.offset}, stride "
                f"{list(self.stride)}) reaches past its storage '{self.storage.key}' of "
                f"{flat.size} elements: the file is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.shape,
            strides=[s * flat.itemsize for s in self.stride], writeable=False)
        # np.array, not ascontiguousarray, which would turn a 0-d tensor into shape [1]
        return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C", copy=True)

    def __repr__(self) -> str:
        return f"LazyTensor({self.dtype}, {list(self.shape)})"


def _rebuild_tensor(read_bytes: Callable[[str], bytes]) -> Callable[..., LazyTensor]:
    def rebuild(storage: _StorageRef, offset: int, size: Sequence[int],
                stride: Sequence[int], *unused: Any) -> LazyTensor:
        if not isinstance(storage, _StorageRef):
            raise TorchFormatError(f"tensor rebuilt from a {type(storage).__name__}, "
                                   f"not a storage")
        return LazyTensor(storage, offset, size, stride, read_bytes)
    return rebuild


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    try:
        from numpy._core import multiarray  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core import multiarray
    found = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = multiarray._reconstruct
        found[(module, "scalar")] = multiarray.scalar
    found[("numpy", "ndarray")] = np.ndarray
    found[("numpy", "dtype")] = np.dtype
    return found


_SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex,
                  "list": list, "dict": dict, "tuple": tuple, "bytearray": bytearray}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise TorchFormatError(f"unexpected text encoding {encoding!r} in the pickle")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a checkpoint needs; see the module docstring."""

    def __init__(self, file: BinaryIO, read_bytes: Callable[[str], bytes],
                 persistent: Callable[[Any], Any], encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)
        self._rebuild = _rebuild_tensor(read_bytes)
        self._persistent = persistent
        self._numpy = _numpy_globals()
        self.opaque_names: List[str] = []

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._rebuild
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return lambda data, *unused: data
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            # a tensor subclass or a tensor with attributes: keep the plain tensor
            return lambda func, new_type, args, state: func(*args)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # the persistent id only needs the dtype
        if module == "torch" and name == "Size":
            return tuple
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "_codecs" and name == "encode":  # bytes in a protocol-2 pickle
            return _latin1_encode
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if (module, name) in self._numpy:
            return self._numpy[(module, name)]
        self.opaque_names.append(f"{module}.{name}")
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


def _storage_from_pid(pid: Any, legacy: bool) -> _StorageRef:
    if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
        raise TorchFormatError(f"unsupported persistent id {pid!r:.80} (only tensor storages "
                               f"are supported)")
    dtype = pid[1] if isinstance(pid[1], str) else "uint8"
    key, numel = str(pid[2]), int(pid[4])
    if legacy and len(pid) > 5 and pid[5] is not None:  # an old storage view
        view_key, view_offset, view_numel = pid[5]
        return _StorageRef(key, dtype, numel, offset=int(view_offset))
    return _StorageRef(key, dtype, numel)


def _sniff(head: bytes) -> str:
    """Name the format of a file from its first bytes."""
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in (2, 3, 4, 5):
        return "pickle"
    if head.startswith((b"(dp", b"}q", b"}(")):  # a dict in pickle protocol 0 or 1 (Python 2)
        return "pickle"
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x05\x06"):  # only the end-of-archive record: nothing was stored
        return "an empty zip archive (it holds no files; the checkpoint was not written into it)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (Keras/TensorFlow weights?)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file (unpack it first)"
    if len(head) >= 9 and head[8:9] == b"{":
        return "a safetensors file"
    if head.lstrip()[:1] in (b"{", b"[") or head[:1].isalpha() or head.startswith(b"#"):
        return "a text file (a config or a list, not weights)"
    return f"an unknown binary format (first bytes {head[:8]!r})"


def detect_format(path: str) -> str:
    """``torch_zip``, ``torch_legacy`` or ``caffe2_pickle``; anything else raises a
    :class:`TorchFormatError` that names what the file looks like."""
    if not os.path.isfile(path):
        raise TorchFormatError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    kind = _sniff(head)
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            if any(n.endswith("/constants.pkl") for n in names):
                raise TorchFormatError(f"{path} is a TorchScript archive (torch.jit.save); "
                                       f"save the model's state_dict with torch.save instead")
            return "torch_zip"
        raise TorchFormatError(f"{path} is a zip file without data.pkl, not a PyTorch "
                               f"checkpoint (members: {names[:5]})")
    if kind == "pickle":
        # the legacy torch format starts with a pickled int: PROTO 2, LONG1 10 bytes
        return "torch_legacy" if head[2:4] == b"\x8a\x0a" else "caffe2_pickle"
    raise TorchFormatError(f"{path} is {kind}, not a PyTorch checkpoint (.pyth/.pt zip or "
                           f"legacy) or a Caffe2 .pkl pickle")


def _read_zip(path: str) -> Tuple[Any, List[str]]:
    archive = zipfile.ZipFile(path)
    names = archive.namelist()
    pkl = next(n for n in names if n.endswith("data.pkl"))
    prefix = pkl[: -len("data.pkl")]
    byteorder = "little"
    if f"{prefix}byteorder" in names:
        byteorder = archive.read(f"{prefix}byteorder").decode().strip()
    if byteorder != "little":
        raise TorchFormatError(f"{path}: big-endian checkpoints are not supported")
    cache: Dict[str, bytes] = {}

    def read_bytes(key: str) -> bytes:
        if key not in cache:
            member = f"{prefix}data/{key}"
            if member not in names:
                raise TorchFormatError(f"{path}: storage '{key}' ({member}) is missing from "
                                       f"the archive")
            cache[key] = archive.read(member)
        return cache[key]

    unpickler = _RestrictedUnpickler(io.BytesIO(archive.read(pkl)), read_bytes,
                                     lambda pid: _storage_from_pid(pid, legacy=False))
    return unpickler.load(), unpickler.opaque_names


def _read_legacy(path: str) -> Tuple[Any, List[str]]:
    with open(path, "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    storages: Dict[str, _StorageRef] = {}
    blobs: Dict[str, bytes] = {}

    def persistent(pid: Any) -> _StorageRef:
        ref = _storage_from_pid(pid, legacy=True)
        storages.setdefault(ref.key, _StorageRef(ref.key, ref.dtype, ref.numel))
        return ref

    def plain_load() -> Any:
        return _RestrictedUnpickler(stream, blobs.__getitem__, persistent).load()

    if plain_load() != _LEGACY_MAGIC:
        raise TorchFormatError(f"{path}: a pickle that is not a PyTorch checkpoint")
    plain_load()  # protocol version
    plain_load()  # system info (byte order, type sizes)
    unpickler = _RestrictedUnpickler(stream, blobs.__getitem__, persistent)
    result = unpickler.load()
    keys = plain_load()
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise TorchFormatError(f"{path}: storage '{key}' is listed but never used")
        itemsize = _ITEMSIZE.get(ref.dtype) or np.dtype(ref.dtype).itemsize
        header = stream.read(8)
        if len(header) < 8:
            raise TorchFormatError(f"{path}: truncated before storage '{key}'")
        (numel,) = struct.unpack("<q", header)
        blob = stream.read(numel * itemsize)
        if len(blob) < numel * itemsize:
            raise TorchFormatError(f"{path}: storage '{key}' is truncated")
        blobs[str(key)] = blob
    return result, unpickler.opaque_names


def _read_caffe2(path: str) -> Tuple[Any, List[str]]:
    def no_storages(pid: Any) -> Any:
        raise TorchFormatError(f"{path}: a plain pickle with persistent ids is not a Caffe2 "
                               f"checkpoint")

    with open(path, "rb") as f:
        unpickler = _RestrictedUnpickler(f, lambda key: b"", no_storages, encoding="latin1")
        try:
            obj = unpickler.load()
        except (pickle.UnpicklingError, EOFError) as err:
            raise TorchFormatError(f"{path}: unreadable pickle: {err}") from err
    return obj, unpickler.opaque_names


def read_checkpoint(path: str) -> Tuple[Any, str, List[str]]:
    """Read ``path``: ``(object, format, opaque class names)``.

    ``object`` is the pickled structure with tensors as :class:`LazyTensor` (Caffe2 blobs are
    already NumPy arrays); ``format`` is one of :func:`detect_format`'s answers.
    """
    fmt = detect_format(path)
    reader = {"torch_zip": _read_zip, "torch_legacy": _read_legacy,
              "caffe2_pickle": _read_caffe2}[fmt]
    try:
        obj, opaque = reader(path)
    except TorchFormatError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, struct.error) as err:
        raise TorchFormatError(f"{path}: corrupt {fmt} checkpoint: {err}") from err
    return obj, fmt, opaque


def materialize(value: Any, name: Optional[str] = None) -> np.ndarray:
    """A :class:`LazyTensor` or array-like as a NumPy array (errors name ``name``)."""
    try:
        if isinstance(value, LazyTensor):
            return value.numpy()
        return np.asarray(value)
    except TorchFormatError as err:
        raise TorchFormatError(f"{name}: {err}" if name else str(err)) from None
