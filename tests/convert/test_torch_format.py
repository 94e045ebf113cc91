"""PyTorch / Caffe2 checkpoint reading without PyTorch.

The writers below build files byte-for-byte in PyTorch's layouts from NumPy arrays with the standard
library only: the zip format (``<prefix>/data.pkl`` + ``<prefix>/data/<key>`` + ``version``), the
legacy single-stream format, and a Python-2-style Caffe2 pickle. They are reused by
``tests/tools/test_convert_checkpoint.py``.
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

from paddlevideo.convert.torch_format import (
    LazyTensor,
    OpaqueObject,
    TorchFormatError,
    detect_format,
    materialize,
    read_checkpoint,
)

STORAGE_TYPES = {"float32": "FloatStorage", "float16": "HalfStorage", "float64": "DoubleStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage",
                 "bool": "BoolStorage", "bfloat16": "BFloat16Storage"}


class Global:
    """Pickles as the global ``module.name`` without importing it (e.g. torch names)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only accepts callables as reduce functions
        raise AssertionError("never called")


class Storage:
    def __init__(self, key: str, dtype: str, raw: bytes, numel: int) -> None:
        self.key, self.dtype, self.raw, self.numel = key, dtype, raw, numel


class View:
    """A tensor over ``base`` (1-D) with an element ``offset`` and element ``stride``."""

    def __init__(self, base: np.ndarray, offset: int, shape, stride) -> None:
        self.base, self.offset, self.shape, self.stride = base, offset, shape, stride


class BF16:
    """A float32 array stored as bfloat16 (its values must be exact in bfloat16)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array, dtype=np.float32)


class _Tensor:
    def __init__(self, storage: Storage, offset: int, shape, stride) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class _Pickler(pickle._Pickler):
    """Protocol-2 pickler writing storages as persistent ids and tensors as
    ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy: bool = False) -> None:
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages = {}
        self.bases = {}

    def save_global_marker(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_global_marker

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", Global("torch", STORAGE_TYPES[obj.dtype]), obj.key, "cpu",
                   obj.numel)
            return pid + (None,) if self.legacy else pid
        return None

    def _storage(self, flat: np.ndarray, dtype: str) -> Storage:
        key = str(len(self.storages))
        self.storages[key] = Storage(key, dtype, flat.astype(flat.dtype.newbyteorder("<"))
                                     .tobytes(), flat.size)
        return self.storages[key]

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            tensor = _Tensor(self._storage(obj.ravel(), obj.dtype.name), 0, obj.shape,
                             [int(np.prod(obj.shape[i + 1:])) for i in range(obj.ndim)])
        elif isinstance(obj, BF16):
            bits = (obj.array.ravel().view(np.uint32) >> 16).astype(np.uint16)
            tensor = _Tensor(self._storage(bits, "uint16"), 0, obj.array.shape,
                             [int(np.prod(obj.array.shape[i + 1:]))
                              for i in range(obj.array.ndim)])
            tensor.storage.dtype = "bfloat16"
        elif isinstance(obj, View):  # views of one base array share one storage
            if id(obj.base) not in self.bases:
                self.bases[id(obj.base)] = self._storage(obj.base, obj.base.dtype.name)
            storage = self.bases[id(obj.base)]
            tensor = _Tensor(storage, obj.offset, obj.shape, obj.stride)
        else:
            return NotImplemented
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (tensor.storage, tensor.offset, tuple(tensor.shape), tuple(tensor.stride), False,
                 collections.OrderedDict()))


def write_torch_zip(path, obj, prefix: str = "archive") -> None:
    """Write ``obj`` (nested dicts/lists; ``np.ndarray``/``View``/``BF16`` become tensors) in the
    zip layout ``torch.save`` uses."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    pickler.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", buffer.getvalue())
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, storage in pickler.storages.items():
            archive.writestr(f"{prefix}/data/{key}", storage.raw)
        archive.writestr(f"{prefix}/version", "3\n")
        archive.writestr(f"{prefix}/.data/serialization_id", "0123456789")


def write_torch_legacy(path, obj) -> None:
    """The pre-1.6 single-stream layout: magic, protocol, sys info, object, keys, storages."""
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    pickler = _Pickler(out, legacy=True)
    pickler.dump(obj)
    pickle.dump(list(pickler.storages), out, protocol=2)
    for storage in pickler.storages.values():
        out.write(struct.pack("<q", storage.numel) + storage.raw)
    with open(path, "wb") as f:
        f.write(out.getvalue())


class _Caffe2Pickler(pickle._Pickler):
    """Arrays reduced as a Python 2 / NumPy 1 pickle has them: ``numpy.core.multiarray.
    _reconstruct`` with the raw data as a latin-1 string."""

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[Global] = _Pickler.save_global_marker

    def reducer_override(self, obj):
        if not isinstance(obj, np.ndarray):
            return NotImplemented
        data = np.ascontiguousarray(obj).tobytes().decode("latin1")
        return (Global("numpy.core.multiarray", "_reconstruct"),
                (Global("numpy", "ndarray"), (0,), "b"),
                (1, obj.shape, obj.dtype, False, data))


def write_caffe2_pickle(path, blobs: dict, extra: dict = None) -> None:
    """A PySlowFast model-zoo style ``.pkl``: ``{'blobs': {name: array}, ...}``."""
    out = io.BytesIO()
    _Caffe2Pickler(out, protocol=2).dump({"blobs": blobs, **(extra or {})})
    with open(path, "wb") as f:
        f.write(out.getvalue())


# ----------------------------------------------------------------------------------------------


def _values(rng, dtype, shape):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("writer", [write_torch_zip, write_torch_legacy])
def test_every_dtype_reads_bit_exactly(tmp_path, writer):
    rng = np.random.default_rng(0)
    arrays = {d: _values(rng, d, (3, 4)) for d in ("float32", "float16", "float64", "int64",
                                                    "int32", "uint8", "bool")}
    # bfloat16 keeps the top 16 bits of a float32: these values are exact in it
    bf16 = (rng.standard_normal((2, 5)).astype(np.float32).view(np.uint32)
            & 0xFFFF0000).view(np.float32)
    path = tmp_path / "all.pt"
    writer(path, {**arrays, "bf16": BF16(bf16)})
    obj, fmt, opaque = read_checkpoint(str(path))
    assert fmt == ("torch_zip" if writer is write_torch_zip else "torch_legacy")
    assert opaque == []
    for name, array in arrays.items():
        assert isinstance(obj[name], LazyTensor) and obj[name].dtype == name
        got = obj[name].numpy()
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)
    assert obj["bf16"].dtype == "bfloat16"
    got = obj["bf16"].numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, bf16)


@pytest.mark.parametrize("writer", [write_torch_zip, write_torch_legacy])
def test_strided_offset_and_shared_storage_views(tmp_path, writer):
    base = np.arange(40, dtype=np.float32)
    path = tmp_path / "views.pth"
    writer(path, {
        "transposed": View(base, 0, (4, 5), (1, 4)),        # a .t() of a [5, 4] tensor
        "offset": View(base, 7, (2, 3), (3, 1)),            # a slice starting at element 7
        "every_other": View(base, 1, (3, 2), (10, 2)),      # non-contiguous both ways
        "scalar": View(base, 39, (), ()),
        "empty": View(base, 0, (0, 3), (3, 1)),
    })
    obj, _, _ = read_checkpoint(str(path))
    np.testing.assert_array_equal(obj["transposed"].numpy(), base[:20].reshape(5, 4).T)
    np.testing.assert_array_equal(obj["offset"].numpy(), base[7:13].reshape(2, 3))
    np.testing.assert_array_equal(obj["every_other"].numpy(),
                                  np.array([[1, 3], [11, 13], [21, 23]], np.float32))
    assert obj["scalar"].numpy().shape == () and obj["scalar"].numpy() == 39
    assert obj["empty"].numpy().shape == (0, 3)
    assert obj["transposed"].numpy().flags["C_CONTIGUOUS"]


def test_nested_checkpoint_keeps_plain_values_and_reads_lazily(tmp_path):
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((2, 3)).astype(np.float32)
    path = tmp_path / "checkpoint_epoch_00010.pyth"
    write_torch_zip(path, {
        "epoch": 10, "cfg": "TRAIN:\n  ENABLE: True\n",
        "model_state": collections.OrderedDict([("w", weight)]),
        "optimizer_state": {"state": {0: {"momentum_buffer": weight * 2}},
                            "param_groups": [{"lr": 0.1, "params": [0]}]},
    }, prefix="checkpoint_epoch_00010")
    obj, _, _ = read_checkpoint(str(path))
    assert obj["epoch"] == 10 and obj["cfg"].startswith("TRAIN")
    assert isinstance(obj["model_state"], collections.OrderedDict)
    assert repr(obj["model_state"]["w"]) == "LazyTensor(float32, [2, 3])"
    np.testing.assert_array_equal(materialize(obj["model_state"]["w"]), weight)
    assert obj["optimizer_state"]["param_groups"][0]["lr"] == 0.1


def test_unknown_classes_become_inert_objects(tmp_path):
    # a config object and a call that would run a shell command if it were resolved
    path = tmp_path / "unsafe.pt"
    write_torch_zip(path, {"cfg": _Reduce(Global("yacs.config", "CfgNode"), ({"A": 1},)),
                           "evil": _Reduce(Global("os", "system"), ("touch pwned",)),
                           "w": np.ones(2, np.float32)})
    obj, _, opaque = read_checkpoint(str(path))
    assert isinstance(obj["cfg"], OpaqueObject) and obj["cfg"].qualified_name == \
        "yacs.config.CfgNode"
    assert isinstance(obj["evil"], OpaqueObject) and obj["evil"].args == ("touch pwned",)
    assert sorted(opaque) == ["os.system", "yacs.config.CfgNode"]
    assert not (tmp_path / "pwned").exists()


class _Reduce:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_caffe2_pickle_reads_arrays(tmp_path):
    blobs = {"conv1_w": np.arange(6, dtype=np.float32).reshape(1, 2, 3),
             "pred_b": np.array([0.5, -1.5], np.float32), "model_iter": np.array([7])}
    path = tmp_path / "SLOWFAST_4x16_R50.pkl"
    write_caffe2_pickle(path, blobs)
    assert b"numpy.core.multiarray" in path.read_bytes()
    obj, fmt, opaque = read_checkpoint(str(path))
    assert fmt == "caffe2_pickle" and opaque == []
    assert sorted(obj["blobs"]) == sorted(blobs)
    for name, array in blobs.items():
        np.testing.assert_array_equal(obj["blobs"][name], array)
        assert obj["blobs"][name].dtype == array.dtype


def test_py3_protocol2_numpy_pickle_reads(tmp_path):
    # NumPy's own reduce under protocol 2 goes through _codecs.encode for the raw bytes
    array = np.linspace(0, 1, 7, dtype=np.float32)
    path = tmp_path / "blobs.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"pred_w": array}}, protocol=2))
    obj, fmt, _ = read_checkpoint(str(path))
    assert fmt == "caffe2_pickle"
    np.testing.assert_array_equal(obj["blobs"]["pred_w"], array)


@pytest.mark.parametrize("content, words", [
    (b"", "empty file"),
    (b"MODEL:\n  framework: Recognizer3D\n", "text file"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 16, "HDF5"),
    (b"\x1f\x8b\x08\x00" + b"\0" * 16, "gzip"),
    (b"\x07\x00\x00\x00\x00\x00\x00\x00{\"a\":1}", "safetensors"),
    (b"\x00\x01\x02\x03garbage", "unknown binary format"),
])
def test_other_formats_are_named(tmp_path, content, words):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(TorchFormatError, match=words) as err:
        read_checkpoint(str(path))
    assert str(path) in str(err.value)


def test_an_empty_zip_is_named_as_such(tmp_path):
    empty = tmp_path / "SLOWFAST_8x8_R50.pyth"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(TorchFormatError, match="is an empty zip archive") as err:
        read_checkpoint(str(empty))
    assert "text file" not in str(err.value) and str(empty) in str(err.value)


def test_zip_files_that_are_not_checkpoints(tmp_path):
    plain = tmp_path / "data.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("videos/a.txt", "x")
    with pytest.raises(TorchFormatError, match="zip file without data.pkl"):
        detect_format(str(plain))
    scripted = tmp_path / "model.pt"
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("model/data.pkl", "x")
        archive.writestr("model/constants.pkl", "x")
    with pytest.raises(TorchFormatError, match="TorchScript"):
        detect_format(str(scripted))
    with pytest.raises(TorchFormatError, match="not found"):
        detect_format(str(tmp_path / "missing.pyth"))


def test_truncated_and_missing_storages_are_reported(tmp_path):
    path = tmp_path / "bad.pyth"
    base = np.arange(6, dtype=np.float32)
    write_torch_zip(path, {"too_long": View(base, 4, (4,), (1,)), "ok": base})
    obj, _, _ = read_checkpoint(str(path))
    with pytest.raises(TorchFormatError, match=r"too_long: .*reaches past its storage"):
        materialize(obj["too_long"], name="too_long")
    # drop the storage member of "ok"
    stripped = tmp_path / "stripped.pyth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stripped, "w") as dst:
        for item in src.namelist():
            if item != "archive/data/1":
                dst.writestr(item, src.read(item))
    obj, _, _ = read_checkpoint(str(stripped))
    with pytest.raises(TorchFormatError, match=r"storage '1' \(archive/data/1\) is missing"):
        obj["ok"].numpy()


def test_truncated_legacy_file_is_reported(tmp_path):
    path = tmp_path / "old.pth"
    write_torch_legacy(path, {"w": np.ones(100, np.float32)})
    data = path.read_bytes()
    path.write_bytes(data[:-50])
    with pytest.raises(TorchFormatError, match="storage '0' is truncated"):
        read_checkpoint(str(path))


@pytest.mark.torch
@pytest.mark.parametrize("zipped", [True, False])
def test_torch_save_reads_bit_exactly(tmp_path, zipped):
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(10, 12, generator=gen)
    tensors = {
        "float32": torch.randn(3, 4, generator=gen),
        "float16": torch.randn(3, 4, generator=gen).half(),
        "float64": torch.randn(2, 3, 1, 2, generator=gen).double(),
        "bfloat16": torch.randn(5, generator=gen).bfloat16(),
        "int64": torch.randint(-5, 5, (6,), generator=gen),
        "transposed": base.t(),                   # non-contiguous view of a shared storage
        "offset_slice": base[3:5, 2:9],           # storage offset 38, row stride 12
        "every_third": base[:, ::3],
        "expanded": torch.arange(3.0).expand(4, 3),  # stride 0
        "scalar": torch.tensor(2.5),
        "parameter": torch.nn.Parameter(torch.ones(2)),
    }
    tensors["with_attribute"] = torch.arange(4.0)
    tensors["with_attribute"].note = "pickled through _rebuild_from_type_v2"
    path = tmp_path / ("new.pyth" if zipped else "legacy.pyth")
    torch.save({"model_state": tensors, "epoch": 7}, path,
               _use_new_zipfile_serialization=zipped)
    obj, fmt, _ = read_checkpoint(str(path))
    assert fmt == ("torch_zip" if zipped else "torch_legacy")
    assert obj["epoch"] == 7
    assert obj["model_state"]["offset_slice"].offset == 38
    for name, tensor in tensors.items():
        expected = tensor.detach()
        expected = (expected.float() if expected.dtype == torch.bfloat16 else expected).numpy()
        got = obj["model_state"][name].numpy()
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
