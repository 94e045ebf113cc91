"""Every entry point through the failures a user can cause or meet: a message, an exit code,
never a traceback.

Disk full is a real full file system (a small tmpfs) and a read-only folder a read-only tmpfs
when the tests run as root (as in CI); elsewhere the limits of ``ulimit -f`` and a folder
without write permission stand in for them. Mounts are always undone.
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO_ROOT, SHARED_VIDEOS
from tests.tasks.conftest import DEMO_CONFIG, tiny_dataset, tiny_overrides  # noqa: F401

MAIN, TOOLS = str(REPO_ROOT / "main.py"), REPO_ROOT / "tools"
EXAMPLE = str(SHARED_VIDEOS / "example.avi")
SMALL_BYTES = 256 * 1024  # room for a run's log and config, not for a checkpoint


def _mount(target: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True).returncode == 0


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(bytes(4096))
        except OSError:  # no space left: the file system is full
            pass


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """``small``: a file system with room for a run's log and config, not for a checkpoint;
    ``full``: one without a free byte; ``read_only``: a folder nothing can be written to;
    ``fsize``: the ``ulimit -f`` bytes standing in for each where nothing can be mounted."""
    root = tmp_path_factory.mktemp("places")
    mounted: List[Path] = []
    fsize: Dict[str, int] = {}
    read_only = root / "read_only"
    try:
        for name, size in (("small", SMALL_BYTES), ("full", 64 * 1024)):
            if _mount(root / name, f"size={size}"):
                mounted.append(root / name)
                if name == "full":
                    _fill(root / name)
            else:
                (root / name).mkdir(exist_ok=True)
                fsize[name] = size if name == "small" else 16
        if _mount(read_only, "ro,size=64k"):
            mounted.append(read_only)
        else:
            read_only.mkdir(exist_ok=True)
            read_only.chmod(0o555)
        yield {"small": root / "small", "full": root / "full", "read_only": read_only,
               "fsize": fsize, "root": root}
    finally:
        for target in mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)
        if read_only.exists():
            read_only.chmod(0o755)


@pytest.fixture(scope="module")
def assets(tiny_dataset, tmp_path_factory):  # noqa: F811
    """Configs that are not UTF-8, a tiny config, its weights, an exported small model."""
    import paddle

    from paddlevideo.modeling import build_model
    from paddlevideo.utils import dump_config, get_config
    from tests.inference.helpers import small_config_file, small_export

    root = tmp_path_factory.mktemp("assets")
    demo = Path(DEMO_CONFIG).read_text(encoding="utf-8")
    (root / "gbk.yaml").write_bytes(demo.encode("utf-8") + "# 训练配置\n".encode("gbk"))
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    cfg = get_config(DEMO_CONFIG, tiny_overrides(tiny_dataset, root / "unused"))
    dump_config(cfg, str(root / "tiny.yaml"))
    paddle.seed(0)
    paddle.save(build_model(cfg.MODEL).state_dict(), str(root / "tiny.pdparams"))
    (root / "gbk.list").write_bytes("视频.mp4 0\n".encode("gbk"))
    (root / "one.list").write_text(f"{EXAMPLE} 0\n")
    corrupt = root / "corrupt_run"
    corrupt.mkdir()
    (corrupt / "SlowFastDemo_epoch_00001.json").write_text('{"format": "paddlevideo-checkp')
    exported = small_export("pdmodel")
    return {"root": root, "data": tiny_dataset, "small_config": str(small_config_file()),
            "model": exported["model"], "params": exported["params"]}


def _train(a: Dict, out, *extra: str) -> List[str]:
    args = [MAIN, "-c", DEMO_CONFIG, "--max_iters", "1", *extra]
    for item in tiny_overrides(a["data"], out, epochs=1) + ["PRECISEBN.num_iters_preciseBN=1"]:
        args += ["-o", item]
    return args


def _predict(a: Dict, *extra: str) -> List[str]:
    return [str(TOOLS / "predict.py"), "--use_gpu", "False", "--model_file", a["model"],
            "--params_file", a["params"], *extra]


# (name, command (assets, places → argv after the interpreter), exit code, telling phrase)
CASES = [
    ("train: GBK config", lambda a, p: [MAIN, "-c", str(a["root"] / "gbk.yaml")],
     2, "gbk.yaml:"),
    ("test: binary config", lambda a, p: [MAIN, "--test", "-c", str(a["root"] / "binary.yaml"),
                                          "-w", "x.pdparams"], 2, "not UTF-8 text"),
    ("multigrid: GBK config", lambda a, p: [MAIN, "--multigrid", "-c",
                                            str(a["root"] / "gbk.yaml")], 2, "not UTF-8 text"),
    ("test: missing weights", lambda a, p: _train(a, p["root"] / "t", "--test", "-w",
                                                  str(a["root"] / "absent.pdparams")),
     2, "Checkpoint not found"),
    ("train: read-only output folder", lambda a, p: _train(a, p["read_only"] / "run"),
     2, "cannot create the run lock"),
    ("train: disk full", lambda a, p: _train(a, p["small"] / "run"), 1, "No space left"),
    ("train: disk full at the start", lambda a, p: _train(a, p["full"] / "run"),
     1, "No space left"),
    ("train: corrupt manifest", lambda a, p: _train(a, a["root"] / "corrupt_run"),
     2, "not a checkpoint manifest"),
    ("multigrid: a schedule it cannot rewrite", lambda a, p: _train(a, p["root"] / "m",
                                                                    "--multigrid"),
     2, "multigrid training needs a piecewise LR"),
    ("export: GBK config", lambda a, p: [str(TOOLS / "export_model.py"), "-c",
                                         str(a["root"] / "gbk.yaml"), "-p", "w.pdparams"],
     2, "not UTF-8 text"),
    ("export: missing weights", lambda a, p: [str(TOOLS / "export_model.py"), "-c",
                                              str(a["root"] / "tiny.yaml"), "-p",
                                              str(a["root"] / "absent.pdparams")],
     2, "Checkpoint not found"),
    ("export: disk full", lambda a, p: [str(TOOLS / "export_model.py"), "-c",
                                        str(a["root"] / "tiny.yaml"), "-p",
                                        str(a["root"] / "tiny.pdparams"), "-o",
                                        str(p["small"] / "export")], 1, "No space left"),
    ("predict: GBK config", lambda a, p: _predict(a, "-i", EXAMPLE, "-c",
                                                  str(a["root"] / "gbk.yaml")),
     2, "not UTF-8 text"),
    ("predict: missing weights", lambda a, p: [str(TOOLS / "predict.py"), "-i", EXAMPLE, "-c",
                                               a["small_config"], "--model_file", a["model"],
                                               "--params_file", "absent.pdiparams"],
     2, "absent.pdiparams"),
    ("predict: disk full", lambda a, p: _predict(a, "-i", EXAMPLE, "-c", a["small_config"],
                                                 "--output", str(p["full"] / "r.json")),
     1, "No space left"),
    ("predict --timeline: read-only output", lambda a, p: _predict(
        a, "-i", EXAMPLE, "-c", a["small_config"], "--timeline", "--output_video",
        str(p["read_only"] / "annotated.mp4")), 2, "is not writable"),
    ("check_videos: GBK list", lambda a, p: [str(TOOLS / "check_videos.py"),
                                             str(a["root"] / "gbk.list")], 2, "not UTF-8"),
    ("check_videos: read-only output", lambda a, p: [
        str(TOOLS / "check_videos.py"), str(a["root"] / "one.list"), "--out",
        str(p["read_only"] / "clean.list")], 2, "clean.list"),
    ("convert: GBK config", lambda a, p: [str(TOOLS / "convert_checkpoint.py"), "src.pyth",
                                          "--from", "pyslowfast", "-c",
                                          str(a["root"] / "gbk.yaml"), "-o", "x.pdparams"],
     2, "not UTF-8 text"),
    ("summary: binary config", lambda a, p: [str(TOOLS / "summary.py"), "-c",
                                             str(a["root"] / "binary.yaml")],
     2, "not UTF-8 text"),
]


def _limit_file_size(fsize):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


@pytest.mark.slow
@pytest.mark.parametrize("name, command, code, phrase", CASES, ids=[c[0] for c in CASES])
def test_a_failure_is_a_message_and_an_exit_code_never_a_traceback(assets, places, name,
                                                                   command, code, phrase):
    argv = [str(a) for a in command(assets, places)]
    limit = next((places["fsize"].get(kind) for kind in ("small", "full")
                  if str(places[kind]) in " ".join(argv)), None)
    proc = subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          preexec_fn=_limit_file_size(limit) if limit else None)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == code, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith(("Error: ", "Config error: ", "error: "))]
    assert starts, proc.stderr[-3000:]
    message = "\n".join(lines[starts[-1]:])  # the message, with the list it names if any
    if limit and phrase == "No space left":
        # ulimit -f: EFBIG instead of ENOSPC; Paddle's C++ writer does not check it, and the
        # export's read-back finds the file cut short
        phrase = "loading model parameters" if name.startswith("export") else "File too large"
    assert phrase in message, proc.stderr[-3000:]
