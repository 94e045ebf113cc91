"""Two CPU processes through paddle.distributed.launch: identical weights, one writer."""
import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import REPO_ROOT
from tests.tasks.conftest import DEMO_CONFIG, tiny_overrides

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import paddle
    paddle.set_device("cpu")
    from paddlevideo.tasks import train_model
    from paddlevideo.utils import get_config
    from paddlevideo.utils.dist import get_rank

    config, weights_dir, *overrides = sys.argv[1:]
    result = train_model(get_config(config, overrides), validate=True, parallel=True, seed=3)
    state = {k: v.numpy() for k, v in result["model"].state_dict().items()}
    np.savez(f"{weights_dir}/rank{get_rank()}.npz", **state)
""")


def test_two_process_training(tiny_dataset, tmp_path):
    script = tmp_path / "train_two.py"
    script.write_text(SCRIPT)
    out, weights = tmp_path / "out", tmp_path / "weights"
    weights.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)  # an empty value makes the launcher expect GPUs
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "launch_logs"), str(script), DEMO_CONFIG, str(weights),
           *tiny_overrides(tiny_dataset, out)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    logs = "".join(p.read_text() for p in (tmp_path / "launch_logs").glob("*"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[-3000:]

    rank0, rank1 = np.load(weights / "rank0.npz"), np.load(weights / "rank1.npz")
    assert sorted(rank0.files) == sorted(rank1.files)
    for key in rank0.files:  # parameters via all-reduce, BN statistics via averaging
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)

    log = (out / "train.log").read_text()
    assert log.count("END epoch:1 ") == 1 and log.count("END epoch:2 ") == 1
    # 8 training videos, batch 2 per process × 2 processes: 2 iterations per epoch, and
    # throughput counts both processes' clips
    assert "train step:2 " in log and "train step:3 " not in log
    assert len(os.listdir(out / "vdl")) == 1
    assert (out / "SlowFastDemo_epoch_00002.pdparams").is_file()
    # validation covered the 5 videos once across both processes
    assert "(5 samples)" in log
