"""Read ``.pdparams``/``.pdopt`` pickles without running code from them.

``paddle.save`` (Paddle 2.x and 3.x, pickle protocols 2 to 4) writes only these objects:

- a dict of state (``Layer.state_dict()``, ``Optimizer.state_dict()``) as plain dicts of NumPy
  arrays, plus a ``StructuredToParameterName@@`` name table and, for arrays over 1 GiB with
  protocol 2/3, ``UnpackBigParamInfor@@`` slices;
- any other object (nested dicts such as a ``.pdopt``) with every tensor reduced to the tuple
  ``(name, ndarray)`` through ``builtins.tuple``;
- NumPy arrays and scalars (``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray.
  _reconstruct`` / ``scalar``; ``numpy.core.multiarray`` in files written with NumPy 1), their
  raw bytes through ``_codecs.encode(text, 'latin1')`` in protocol 2;
- plain containers and scalars (sets and complex numbers through ``builtins`` in protocol 2)
  and ``collections.OrderedDict``.

:class:`RestrictedUnpickler` admits exactly these globals; any other ``module.name`` raises
:class:`UnsafePickleError` before it is called, so nothing a crafted file names is ever run.
(Paddle reduces a static-graph ``DenseTensor`` through ``builtins.eval``; such files are refused
like any other code: the project's files and PaddleVideo's never contain one.)
"""
from __future__ import annotations

import builtins
import codecs
import collections
import pickle
from typing import Any, BinaryIO, Callable, Dict, Tuple

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global outside the admitted set; ``global_name`` says which."""

    def __init__(self, global_name: str, why: str = "not an object Paddle's files contain") -> None:
        super().__init__(f"refused {global_name}: {why}")
        self.global_name = global_name


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes: only text codecs, never others."""
    if codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8", "ascii"):
        raise UnsafePickleError("_codecs.encode", f"codec {encoding!r} is not a text codec")
    return codecs.encode(text, encoding)


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype`` without object dtypes: an object array would unpickle arbitrary items."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError("numpy.dtype", "object arrays are not weights")
    return dtype


def _numpy_multiarray() -> Any:
    from numpy._core import multiarray  # NumPy 2 (``numpy.core`` only forwards there)

    return multiarray


# The containers and scalars pickle reaches through a global (the rest have their own opcodes):
# tuple for Paddle's tensor reducer, set and complex in protocol 2.
_BUILTINS: Dict[str, Any] = {name: getattr(builtins, name) for name in (
    "tuple", "list", "dict", "set", "complex")}


def _admitted() -> Dict[Tuple[str, str], Callable[..., Any]]:
    multiarray = _numpy_multiarray()
    table: Dict[Tuple[str, str], Callable[..., Any]] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _plain_dtype,
    }
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    for module in ("builtins", "__builtin__"):  # protocol 2 files name Python 2's module
        table.update({(module, name): value for name, value in _BUILTINS.items()})
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` knows only the globals listed in the module docstring;
    persistent ids (which Paddle never writes) are refused too."""

    _table = _admitted()

    def find_class(self, module: str, name: str) -> Any:
        found = self._table.get((module, name))
        if found is None:
            raise UnsafePickleError(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent id", f"{str(pid)[:60]!r} is not part of Paddle files")


def _is_saved_tensor(value: Any) -> bool:
    """A tensor as ``paddle.save`` reduces it outside a state dict: ``(name, ndarray)``."""
    return (type(value) is tuple and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], np.ndarray))


def _tensors_to_arrays(obj: Any) -> Any:
    """Replace every ``(name, ndarray)`` tensor tuple by its array, as ``paddle.load(...,
    return_numpy=True)`` does; containers keep their type."""
    if _is_saved_tensor(obj):
        return obj[1]
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _tensors_to_arrays(obj[key])
        return obj
    if type(obj) in (list, tuple):
        return type(obj)(_tensors_to_arrays(item) for item in obj)
    return obj


def _join_big_arrays(state: Dict[str, Any]) -> Dict[str, Any]:
    """Reassemble arrays that protocol 2/3 saves split into ``key@@.i`` slices."""
    info = state.pop("UnpackBigParamInfor@@", None)
    for key, parts in (info or {}).items():
        slices = [state.pop(part) for part in parts["slices"]]
        state[key] = np.concatenate(slices).reshape(parts["OriginShape"])
    return state


def load_paddle_pickle(stream: BinaryIO, keep_name_table: bool = False) -> Any:
    """The object a ``paddle.save`` pickle holds, with tensors as NumPy arrays (the result of
    ``paddle.load(path, return_numpy=True)``; ``keep_name_table`` as its ``keep_name_table``).
    Raises :class:`UnsafePickleError` for a file that names anything else than Paddle's own
    objects."""
    obj = RestrictedUnpickler(stream, encoding="latin1").load()
    if isinstance(obj, dict):
        obj = _join_big_arrays(obj)
        if not keep_name_table:
            obj.pop("StructuredToParameterName@@", None)
    return _tensors_to_arrays(obj)
