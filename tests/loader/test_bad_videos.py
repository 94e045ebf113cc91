"""Bad videos are counted as distinct paths across processes."""
import json
import os
import subprocess
import sys
import textwrap

from paddlevideo.loader.dataset.bad_videos import distinct_bad_videos
from paddlevideo.utils.dist import all_gather_objects
from tests.conftest import REPO_ROOT


def test_one_process_keeps_its_own_list():
    assert all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distinct_bad_videos({"b.mp4": "x", "a.mp4": "y"}) == {"a.mp4": "y", "b.mp4": "x"}


def test_a_video_met_by_two_processes_counts_once():
    ranks = [{"a.mp4": "moov atom not found", "b.mp4": "no video stream"},
             {"a.mp4": "cannot open", "c.mp4": "file empty"}]
    merged = distinct_bad_videos({}, gather=lambda local: ranks)
    assert merged == {"a.mp4": "moov atom not found", "b.mp4": "no video stream",
                      "c.mp4": "file empty"}


SCRIPT = textwrap.dedent("""
    import json, sys
    import paddle
    paddle.set_device("cpu")
    from paddlevideo.utils.dist import get_rank, init_distributed
    from paddlevideo.loader.dataset.bad_videos import distinct_bad_videos

    init_distributed()
    rank = get_rank()
    local = {"shared.mp4": f"rank {rank}", f"only{rank}.mp4": "broken"}
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as f:
        json.dump(distinct_bad_videos(local), f)
""")


def test_two_real_processes_agree_on_the_distinct_paths(tmp_path):
    script = tmp_path / "gather.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "logs"), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*"))
    assert proc.returncode == 0, proc.stderr[-2000:] + logs[-3000:]
    expected = {"only0.mp4": "broken", "only1.mp4": "broken", "shared.mp4": "rank 0"}
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected


class _FakeDataset:
    num_videos = 10

    def bad_videos(self):
        return {"mine.mp4": "broken"}


def test_fraction_check_uses_the_distinct_paths_of_all_processes():
    import pytest

    from paddlevideo.loader.dataset.bad_videos import BadVideoError, check_bad_video_fraction

    everyone = {"mine.mp4": "broken", "theirs.mp4": "no video stream"}
    assert check_bad_video_fraction(_FakeDataset(), 0.2, bad=everyone) == 2
    with pytest.raises(BadVideoError, match=r"2 of 10 videos .*\n.*mine.mp4.*\n.*theirs.mp4"):
        check_bad_video_fraction(_FakeDataset(), 0.15, bad=everyone)
    assert check_bad_video_fraction(_FakeDataset(), 0.15) == 1  # this process only
