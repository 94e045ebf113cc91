"""tools/convert_checkpoint.py: PySlowFast (.pyth and Caffe2 .pkl) and PyTorchVideo weights.

Source names are produced here from our names by independent string rules that restate the
projects' naming (PySlowFast ``s2.pathway0_res0.branch2.a_bn.running_var``, Caffe2
``res2_0_branch2a_bn_riv``, PyTorchVideo ``blocks.1.multipathway_blocks.0.res_blocks.0.branch2.
norm_a.running_var``), so a wrong rule in the converter shows up as a failed name check.
"""
import collections
import re
import zipfile
from pathlib import Path

import numpy as np
import paddle
import pytest

from paddlevideo.convert.slowfast import map_name
from paddlevideo.modeling import build_model
from paddlevideo.utils import get_config
from paddlevideo.utils.checkpoint import load, load_weights, save
from tests.convert.test_torch_format import write_caffe2_pickle, write_torch_zip
from tools.convert_checkpoint import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"
CFG_8X8 = str(REPO / "configs/recognition/slowfast/slowfast_multigrid.yaml")
CFG_4X16 = str(REPO / "configs/recognition/slowfast/slowfast.yaml")
NUM_CLASSES = 5
SMALL = ["MODEL.backbone.width_per_group=8", "MODEL.head.width_per_group=8",
         f"MODEL.head.num_classes={NUM_CLASSES}"]
R50_BLOCKS = (3, 4, 6, 3)
BN_TORCH = {"weight": "weight", "bias": "bias", "_mean": "running_mean",
            "_variance": "running_var"}
BN_CAFFE2 = {"weight": "s", "bias": "b", "_mean": "rm", "_variance": "riv"}


def to_pyslowfast(name: str) -> str:
    name = name.removeprefix("backbone.")
    for ours, theirs in (("_stem._conv.", "_stem.conv."), ("_stem._bn.", "_stem.bn."),
                         ("_fuse._conv_f2s.", "_fuse.conv_f2s."), ("_fuse._bn.", "_fuse.bn.")):
        name = name.replace(ours, theirs)
    module, _, suffix = name.rpartition(".")
    return f"{module}.{BN_TORCH[suffix]}"


def to_pytorchvideo(name: str) -> str:
    module, _, suffix = name.rpartition(".")
    suffix = BN_TORCH[suffix]
    if module == "head.projection":
        return f"blocks.6.proj.{suffix}"
    m = re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\._(conv|bn)", module)
    if m:
        return f"blocks.0.multipathway_blocks.{m[1]}.{'conv' if m[2] == 'conv' else 'norm'}." \
               f"{suffix}"
    m = re.fullmatch(r"backbone\.s(\d)_fuse\._(conv_f2s|bn)", module)
    if m:
        part = "conv_fast_to_slow" if m[2] == "conv_f2s" else "norm"
        return f"blocks.{int(m[1]) - 1}.multipathway_fusion.{part}.{suffix}"
    m = re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.(.*)", module)
    part = {"branch1": "branch1_conv", "branch1_bn": "branch1_norm"}.get(m[4])
    if part is None:  # branch2.a -> branch2.conv_a, branch2.a_bn -> branch2.norm_a
        letter = m[4][len("branch2."):][0]
        part = f"branch2.{'norm' if m[4].endswith('_bn') else 'conv'}_{letter}"
    return f"blocks.{int(m[1]) - 1}.multipathway_blocks.{m[2]}.res_blocks.{m[3]}.{part}.{suffix}"


def to_caffe2(name: str) -> str:
    module, _, suffix = name.rpartition(".")
    if module == "head.projection":
        return "pred_w" if suffix == "weight" else "pred_b"
    conv = "w"
    m = re.fullmatch(r"backbone\.s1\.pathway(\d)_stem\._(conv|bn)", module)
    if m:
        fast = "t_" if m[1] == "1" else ""
        return f"{fast}conv1_{conv}" if m[2] == "conv" else \
            f"{fast}res_conv1_bn_{BN_CAFFE2[suffix]}"
    m = re.fullmatch(r"backbone\.s(\d)_fuse\._(conv_f2s|bn)", module)
    if m:
        stage = int(m[1])
        base = "t_pool1_subsample" if stage == 1 else \
            f"t_res{stage}_{R50_BLOCKS[stage - 2] - 1}_branch2c_bn_subsample"
        return f"{base}_{conv}" if m[2] == "conv_f2s" else f"{base}_bn_{BN_CAFFE2[suffix]}"
    m = re.fullmatch(r"backbone\.s(\d)\.pathway(\d)_res(\d+)\.(.*)", module)
    fast = "t_" if m[2] == "1" else ""
    part = m[4].replace("branch2.", "branch2")  # branch2.a_bn -> branch2a_bn
    if part.endswith("_bn"):
        return f"{fast}res{m[1]}_{m[3]}_{part}_{BN_CAFFE2[suffix]}"
    return f"{fast}res{m[1]}_{m[3]}_{part}_{conv}"


NAMERS = {"pyslowfast": to_pyslowfast, "pytorchvideo": to_pytorchvideo, "caffe2": to_caffe2}


def reference_names(variant: str):
    lines = (REFERENCE / f"slowfast_{variant}_state_dict.txt").read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip()]


@pytest.mark.parametrize("scheme", sorted(NAMERS))
@pytest.mark.parametrize("variant", ["4x16", "8x8"])
def test_full_r50_names_map_one_to_one(scheme, variant):
    ours = reference_names(variant)
    assert len(ours) == 552
    sources = [NAMERS[scheme](name) for name in ours]
    assert len(set(sources)) == len(sources)
    assert [map_name(src, scheme) for src in sources] == ours


def test_spot_checks_of_source_names():
    assert to_pyslowfast("backbone.s1_fuse._conv_f2s.weight") == "s1_fuse.conv_f2s.weight"
    assert to_caffe2("backbone.s4_fuse._bn._variance") == \
        "t_res4_5_branch2c_bn_subsample_bn_riv"
    assert to_pytorchvideo("backbone.s5.pathway1_res2.branch2.c_bn._mean") == \
        "blocks.4.multipathway_blocks.1.res_blocks.2.branch2.norm_c.running_mean"
    assert map_name("s2.pathway0_res0.branch1_bn.num_batches_tracked", "pyslowfast") is None
    assert map_name("s2.pathway0_nonlocal1.conv_g.weight", "pyslowfast") is None
    assert map_name("res2_0_branch2a_w_momentum", "caffe2") is None


# ---------------------------------------------------------------------------------- small model

@pytest.fixture(scope="module")
def small():
    """Our small 8x8 model's shapes and random weights (BN variances positive)."""
    paddle.seed(0)
    model = build_model(get_config(CFG_8X8, overrides=SMALL).MODEL)
    rng = np.random.default_rng(0)
    weights = {}
    for name, tensor in model.state_dict().items():
        shape = list(tensor.shape)
        weights[name] = (rng.uniform(0.5, 1.5, shape) if name.endswith("_variance")
                         else rng.standard_normal(shape) * 0.2).astype(np.float32)
    return weights


def source_state(weights, scheme, dtype=np.float32, prefix=""):
    """``weights`` renamed and laid out as ``scheme`` stores them (linear weight [out, in])."""
    state = collections.OrderedDict()
    for name, array in weights.items():
        value = array.T if name == "head.projection.weight" else array
        state[prefix + NAMERS[scheme](name)] = np.ascontiguousarray(value, dtype=dtype)
        if scheme != "caffe2" and name.endswith("._variance"):
            counter = prefix + NAMERS[scheme](name).replace("running_var", "num_batches_tracked")
            state[counter] = np.array(1000, dtype=np.int64)
    return state


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


CASES = {
    "pyslowfast": ("pyslowfast", lambda w: {
        "epoch": 196, "model_state": source_state(w, "pyslowfast"),
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.1}]}, "cfg": "NUM_GPUS: 8"}),
    "pyslowfast_ddp": ("pyslowfast", lambda w: {
        "model_state": source_state(w, "pyslowfast", prefix="module.")}),
    "pytorchvideo": ("pytorchvideo", lambda w: {"model_state": source_state(w, "pytorchvideo")}),
    "pytorchvideo_wrapped_float64": ("pytorchvideo", lambda w: source_state(
        w, "pytorchvideo", dtype=np.float64, prefix="model.")),
}


@pytest.mark.parametrize("case", [*CASES, "caffe2"])
def test_conversion_is_exact_and_loads(tmp_path, capsys, small, case):
    src = tmp_path / ("SLOWFAST_8x8_R50.pkl" if case == "caffe2" else "SLOWFAST_8x8_R50.pyth")
    if case == "caffe2":
        blobs = source_state(small, "caffe2")
        blobs.update({"res2_0_branch2a_w_momentum": np.zeros(3, np.float32),
                      "lr": np.array([0.1], np.float32), "model_iter": np.array([10])})
        write_caffe2_pickle(src, blobs)
        source = "pyslowfast"
    else:
        source, build = CASES[case]
        write_torch_zip(src, build(small))
    out = tmp_path / "converted.pdparams"
    code, stdout, stderr = run(capsys, src, "--from", source, "-c", CFG_8X8, "-o", out,
                               *sum((["--override", o] for o in SMALL), []))
    assert code == 0, stderr
    assert f"Converted {len(small)} of {len(small)} model tensors" in stdout
    if case == "pyslowfast":
        assert "top-level key(s) model_state; not used: cfg, epoch, optimizer_state" in stdout
        assert "Skipped 110 bookkeeping entries" in stdout  # one num_batches_tracked per BN
    if case == "caffe2":
        assert "top-level key(s) blobs" in stdout and "Skipped 3 bookkeeping" in stdout
    converted = load(str(out))
    assert list(converted) == list(small)
    for name, array in small.items():
        assert converted[name].dtype == np.float32
        np.testing.assert_array_equal(converted[name], array, err_msg=name)


def test_converted_model_gives_the_same_outputs(tmp_path, capsys, small):
    src, out = tmp_path / "sf.pyth", tmp_path / "sf.pdparams"
    write_torch_zip(src, {"model_state": source_state(small, "pytorchvideo")})
    code, _, err = run(capsys, src, "--from", "pytorchvideo", "-c", CFG_8X8, "-o", out,
                       *sum((["--override", o] for o in SMALL), []))
    assert code == 0, err
    cfg = get_config(CFG_8X8, overrides=SMALL)
    converted, direct = build_model(cfg.MODEL), build_model(cfg.MODEL)
    load_weights(converted, str(out))
    direct.set_state_dict({k: paddle.to_tensor(v) for k, v in small.items()})
    rng = np.random.default_rng(1)
    fast = rng.standard_normal((2, 3, 8, 32, 32)).astype(np.float32)
    inputs = [paddle.to_tensor(fast[:, :, ::4]), paddle.to_tensor(fast)]
    results = []
    for model in (converted, direct):
        model.eval()
        results.append(model.forward_net(inputs).numpy())
    assert results[0].shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6, atol=1e-7)
    assert np.abs(results[0]).max() > 1e-3  # not a degenerate all-zero output


def _convert(tmp_path, capsys, state, *extra, cfg=CFG_8X8, source="pyslowfast",
             overrides=SMALL):
    src, out = tmp_path / "in.pyth", tmp_path / "out.pdparams"
    write_torch_zip(src, {"model_state": state})
    code, stdout, stderr = run(capsys, src, "--from", source, "-c", cfg, "-o", out,
                               *sum((["--override", o] for o in overrides), []), *extra)
    return code, stdout, stderr, out


def test_missing_and_extra_tensors_are_named(tmp_path, capsys, small):
    state = source_state(small, "pyslowfast")
    del state["s3.pathway1_res2.branch2.b.weight"]
    state["s2.pathway0_nonlocal1.conv_g.weight"] = np.zeros((4, 4, 1, 1, 1), np.float32)
    code, _, err, out = _convert(tmp_path, capsys, state)
    assert code == 1 and not out.exists()
    assert "source tensors with no place in the model (1):\n    " \
           "s2.pathway0_nonlocal1.conv_g.weight" in err
    assert "model tensors missing from the source (1):\n    " \
           "backbone.s3.pathway1_res2.branch2.b.weight" in err
    assert "--allow_missing" in err

    code, stdout, err, out = _convert(tmp_path, capsys, state, "--allow_missing")
    assert code == 0, err
    assert "WARNING model tensors missing from the source (1): " \
           "backbone.s3.pathway1_res2.branch2.b.weight" in stdout
    assert "s2.pathway0_nonlocal1.conv_g.weight" in stdout
    converted = load(str(out))
    assert "backbone.s3.pathway1_res2.branch2.b.weight" not in converted
    assert len(converted) == len(small) - 1


def test_fusion_kernel_mismatch_is_named_and_never_written(tmp_path, capsys, small):
    # an 8x8 checkpoint (fusion kernel 7) against the 4x16 config (kernel 5)
    state = source_state(small, "pyslowfast")
    for extra in ([], ["--allow_missing"]):
        code, _, err, out = _convert(tmp_path, capsys, state, *extra, cfg=CFG_4X16)
        assert code == 1 and not out.exists()
        assert "s1_fuse.conv_f2s.weight -> backbone.s1_fuse._conv_f2s.weight: " \
               "checkpoint [2, 1, 7, 1, 1] vs model [2, 1, 5, 1, 1]" in err
        assert "shape mismatches (4)" in err and "fusion_kernel_sz" in err


def test_head_with_other_classes(tmp_path, capsys, small):
    state = source_state(small, "pyslowfast")
    state["head.projection.weight"] = np.zeros((600, 288), np.float32)
    state["head.projection.bias"] = np.zeros(600, np.float32)
    code, _, err, out = _convert(tmp_path, capsys, state)
    assert code == 1 and not out.exists()
    assert "head.projection.weight -> head.projection.weight: checkpoint [288, 600] vs model " \
           f"[288, {NUM_CLASSES}]" in err
    assert "MODEL.head.num_classes" in err

    code, stdout, err, out = _convert(tmp_path, capsys, state, "--allow_missing")
    assert code == 0, err
    assert "WARNING dropped classifier (2)" in stdout and "skip_head" in stdout
    converted = load(str(out))
    assert not any(k.startswith("head.") for k in converted)
    model = build_model(get_config(CFG_8X8, overrides=SMALL).MODEL)
    load_weights(model, str(out), skip_head=True)
    np.testing.assert_array_equal(
        model.state_dict()["backbone.s1.pathway0_stem._conv.weight"].numpy(),
        small["backbone.s1.pathway0_stem._conv.weight"])


def test_wrong_source_flag_and_wrong_files(tmp_path, capsys, small):
    code, _, err, _ = _convert(tmp_path, capsys, source_state(small, "pytorchvideo"))
    assert code == 1 and "use --from pytorchvideo" in err

    pkl = tmp_path / "c2.pkl"
    write_caffe2_pickle(pkl, source_state(small, "caffe2"))
    code, _, err = run(capsys, pkl, "--from", "pytorchvideo", "-c", CFG_8X8, "-o",
                       tmp_path / "x.pdparams")
    assert code == 1 and "Caffe2 pickle" in err and "--from pyslowfast" in err

    pdparams = tmp_path / "SlowFast.pdparams"
    save(small, str(pdparams))
    code, _, err = run(capsys, pdparams, "--from", "pyslowfast", "-c", CFG_8X8, "-o",
                       tmp_path / "y.pdparams")
    assert code == 1 and "already uses this framework's names" in err and "-w" in err

    text = tmp_path / "notes.pyth"
    text.write_text("not weights")
    code, _, err = run(capsys, text, "--from", "pyslowfast", "-c", CFG_8X8, "-o",
                       tmp_path / "z.pdparams")
    assert code == 1 and f"{text} is a text file" in err

    empty_zip = tmp_path / "empty_zip.pyth"
    zipfile.ZipFile(empty_zip, "w").close()
    code, _, err = run(capsys, empty_zip, "--from", "pyslowfast", "-c", CFG_8X8, "-o",
                       tmp_path / "v.pdparams")
    assert code == 1 and f"{empty_zip} is an empty zip archive" in err

    empty = tmp_path / "empty.pyth"
    write_torch_zip(empty, {"epoch": 3, "cfg": "x"})
    code, _, err = run(capsys, empty, "--from", "pyslowfast", "-c", CFG_8X8, "-o",
                       tmp_path / "w.pdparams")
    assert code == 1 and "no weights found; top-level keys: ['cfg', 'epoch']" in err


@pytest.mark.torch
@pytest.mark.parametrize("source, zipped", [("pyslowfast", True), ("pyslowfast", False),
                                            ("pytorchvideo", True)])
def test_torch_saved_checkpoints_convert_bit_exactly(tmp_path, capsys, small, source, zipped):
    torch = pytest.importorskip("torch")
    arrays = source_state(small, source)
    # BN statistics as offset views of one shared buffer, as slices of a flat tensor would be
    flat = torch.from_numpy(np.concatenate([a.ravel() for a in arrays.values()
                                            if a.dtype == np.float32]))
    state, start = collections.OrderedDict(), 0
    for name, array in arrays.items():
        if array.dtype != np.float32:
            state[name] = torch.from_numpy(array)
            continue
        view = flat[start:start + array.size].view(array.shape)
        start += array.size
        state[name] = view if "running_" in name else view.clone()
    # the classifier as a transposed (non-contiguous) view of an [in, out] tensor
    head_name = "head.projection.weight" if source == "pyslowfast" else "blocks.6.proj.weight"
    state[head_name] = torch.from_numpy(small["head.projection.weight"].copy()).t()
    assert not state[head_name].is_contiguous()
    wrapped = {"model_state": state, "epoch": 3, "cfg": "TRAIN: {}"}
    src, out = tmp_path / "torch.pyth", tmp_path / "torch.pdparams"
    torch.save(wrapped, src, _use_new_zipfile_serialization=zipped)
    code, stdout, err = run(capsys, src, "--from", source, "-c", CFG_8X8, "-o", out,
                            *sum((["--override", o] for o in SMALL), []))
    assert code == 0, err
    assert ("torch_zip" if zipped else "torch_legacy") in stdout
    converted = load(str(out))
    assert list(converted) == list(small)
    for name, array in small.items():
        np.testing.assert_array_equal(converted[name], array, err_msg=name)
