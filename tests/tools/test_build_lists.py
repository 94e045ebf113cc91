"""tools/build_lists.py: class folders → label list + stratified, seeded, grouped split."""
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from paddlevideo.inference.labels import read_label_map
from paddlevideo.loader.dataset.list_file import read_video_list
from tests.conftest import REPO_ROOT, load_script, numbered_frames, write_video

SCRIPT = REPO_ROOT / "tools" / "build_lists.py"


TOOL = load_script("tools/build_lists.py")


def _run(capsys, *args):
    code = TOOL.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _tree(root, per_class, groups_per_class=None):
    """Empty clip files (the split never opens them): ``{class: n}``; with
    ``groups_per_class`` clips are named ``v_<class>_g<G>_c<i>.AVI`` over that many sources."""
    for name, n in per_class.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            g = i % groups_per_class if groups_per_class else i
            (folder / f"v_{name}_g{g:02d}_c{i:02d}.AVI").write_bytes(b"")
    return root


def _lists(out):
    return {s: read_video_list(str(out / f"{s}.list")) for s in ("train", "val")}


def test_split_is_stratified_seeded_and_listed(tmp_path, capsys):
    root = _tree(tmp_path / "videos", {"b class": 20, "a_cls": 40, "ĉlaso": 10})
    (root / "a_cls" / ".DS_Store").write_bytes(b"x")
    (root / "a_cls" / "notes.txt").write_text("x")
    (root / "zz_empty").mkdir()
    code, out, _ = _run(capsys, root, "--out", tmp_path / "lists", "--val_fraction", "0.25")
    assert code == 0
    assert read_label_map(str(tmp_path / "lists" / "label_list.txt")) == ["a_cls", "b class",
                                                                          "ĉlaso"]
    lists = _lists(tmp_path / "lists")
    val = Counter(v["labels"] for v in lists["val"])
    assert val == {0: 10, 1: 5, 2: 2}  # round(n * 0.25) per class (2.5 → 2)
    train = Counter(v["labels"] for v in lists["train"])
    assert train == {0: 30, 1: 15, 2: 8}
    paths = [v["filename"] for s in lists.values() for v in s]
    assert len(set(paths)) == 70 and all(os.path.isabs(p) and os.path.isfile(p) for p in paths)
    assert all(os.path.basename(os.path.dirname(v["filename"])) == "b class"
               for v in lists["val"] if v["labels"] == 1)
    assert "a_cls/.DS_Store: hidden file" in out and "a_cls/notes.txt: not a video" in out
    assert "empty class folder left out: zz_empty/" in out
    assert "may straddle" in out
    assert re.search(r"^\s+1\s+b class\s+15\s+5$", out, re.M)
    assert "-o label_file=" in out and "slowfast_finetune.yaml" in out
    # the same seed gives the same split, another seed another one
    _run(capsys, root, "--out", tmp_path / "again", "--val_fraction", "0.25")
    assert (tmp_path / "again" / "val.list").read_text() == (
        tmp_path / "lists" / "val.list").read_text()
    _run(capsys, root, "--out", tmp_path / "other", "--val_fraction", "0.25", "--seed", "3")
    assert (tmp_path / "other" / "val.list").read_text() != (
        tmp_path / "lists" / "val.list").read_text()


def _source(path):
    return re.search(r"_g([0-9]+)_", os.path.basename(path)).group(1)


def test_group_keeps_each_source_on_one_side(tmp_path, capsys):
    root = _tree(tmp_path / "videos", {"jump": 30, "run": 24, "wave": 18}, groups_per_class=6)
    code, out, _ = _run(capsys, root, "--out", tmp_path / "lists", "--group", "_g([0-9]+)_",
                        "--val_fraction", "0.2", "--test_fraction", "0.2", "--seed", "5")
    assert code == 0
    sides = {}
    for split in ("train", "val", "test"):
        for v in read_video_list(str(tmp_path / "lists" / f"{split}.list")):
            sides.setdefault(_source(v["filename"]), set()).add(split)
    assert len(sides) == 6 and all(len(s) == 1 for s in sides.values())
    assert {next(iter(s)) for s in sides.values()} == {"train", "val", "test"}
    assert "test" in out.splitlines()[0] and "may straddle" not in out


def test_relative_paths_and_data_prefix(tmp_path, capsys):
    root = _tree(tmp_path / "videos", {"a": 5, "b": 5})
    code, out, _ = _run(capsys, root, "--out", tmp_path / "lists", "--relative")
    assert code == 0
    lines = (tmp_path / "lists" / "train.list").read_text().splitlines()
    assert lines[0].startswith("a/v_a_") and lines[0].endswith(" 0")
    assert f"data_prefix: {root}" in out
    assert f"-o DATASET.train.data_prefix={root}" in out


def test_check_leaves_bad_videos_out(tmp_path, capsys):
    root = tmp_path / "videos"
    frames = numbered_frames(12, 32, 32)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            write_video(root / name / f"{name}{i}.Mp4", frames)
    (root / "b" / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    code, out, _ = _run(capsys, root, "--out", tmp_path / "lists", "--check",
                        "--val_fraction", "0.34")
    assert code == 0
    listed = [v["filename"] for s in _lists(tmp_path / "lists").values() for v in s]
    assert len(listed) == 6 and not any("broken" in p for p in listed)
    assert "1 videos fail the check" in out and "b/broken.mp4" in out


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--out", "{tmp}/o"], "not a folder"),
    ("empty_root", ["--out", "{tmp}/o"], "the folder is empty"),
    ("no_video_class", ["--out", "{tmp}/o"], "holds no video"),
    ("tree", ["--out", "{tmp}/o", "--group", "_x([0-9]+)_"], "matches none"),
    ("tree", ["--out", "{tmp}/o", "--group", "_g[0-9]+_"], "has no capture group"),
    ("tree", ["--out", "{tmp}/o", "--val_fraction", "1.0"], "must lie in (0, 1)"),
    ("tree", ["--out", "{tmp}/o", "--val_fraction", "0"], "must lie in (0, 1)"),
    ("tree_and_lists", ["--out", "{tmp}/o"], "already holds train.list"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, setup, args, message):
    root = tmp_path / "videos"
    if setup == "empty_root":
        root.mkdir()
    elif setup == "no_video_class":
        _tree(root, {"a": 3})
        (root / "b").mkdir()
        (root / "b" / "readme.txt").write_text("x")
    elif setup in ("tree", "tree_and_lists"):
        _tree(root, {"a": 5, "b": 5}, groups_per_class=2)
    if setup == "tree_and_lists":
        (tmp_path / "o").mkdir()
        (tmp_path / "o" / "train.list").write_text("old 0\n")
    code, out, err = _run(capsys, root, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    written = sorted(os.listdir(tmp_path / "o")) if (tmp_path / "o").exists() else []
    assert written == (["train.list"] if setup == "tree_and_lists" else [])
    if setup == "tree_and_lists":
        assert (tmp_path / "o" / "train.list").read_text() == "old 0\n"
        assert _run(capsys, root, "--out", tmp_path / "o", "--overwrite")[0] == 0


def test_cli_runs_as_a_script(tmp_path):
    root = _tree(tmp_path / "videos", {"a": 4, "b": 4})
    done = subprocess.run([sys.executable, str(SCRIPT), str(root), "--out", str(tmp_path / "o"),
                           "--val_fraction", "0.5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "val.list").read_text().count("\n") == 4
