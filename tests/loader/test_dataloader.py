"""build_dataloader: batch shapes with worker processes, seeding, epochs, shared bad-video log."""
import numpy as np
import pytest

from paddlevideo.loader import build_dataloader, build_dataset
from tests.conftest import train_pipeline, write_video

PIPELINE = train_pipeline(48, 64, 40)


@pytest.fixture(scope="module")
def noise_list(tmp_path_factory):
    """8 lines naming one textured 40-frame video, so samples differ only by augmentation."""
    folder = tmp_path_factory.mktemp("loader")
    frames = np.random.default_rng(0).integers(0, 256, (40, 48, 64, 3), dtype=np.uint8)
    video = write_video(folder / "noise.mp4", frames)
    path = folder / "train.list"
    path.write_text("".join(f"{video} {i % 4}\n" for i in range(8)))
    return str(path)


def _loader(list_path, num_workers, seed=5, shuffle=False, pipeline=PIPELINE, **dataset_kw):
    dataset = build_dataset(({"format": "SFVideoDataset", "file_path": list_path, **dataset_kw},
                             pipeline))
    return build_dataloader(dataset, batch_size=2, num_workers=num_workers, shuffle=shuffle,
                            seed=seed)


def _epoch(loader):
    return [[t.numpy() for t in batch] for batch in loader]


def test_two_workers_yield_shaped_batches(noise_list):
    loader = _loader(noise_list, num_workers=2)
    assert len(loader) == 4 and loader.dataset.num_videos == 8
    batches = _epoch(loader)
    assert len(batches) == 4
    for slow, fast, label in batches:
        assert slow.shape == (2, 3, 2, 40, 40) and fast.shape == (2, 3, 8, 40, 40)
        assert slow.dtype == np.float32 and label.dtype == np.int64 and label.shape == (2, 1)
    assert np.concatenate([b[2] for b in batches]).ravel().tolist() == [0, 1, 2, 3] * 2


def test_workers_and_epochs_draw_different_augmentations(noise_list):
    loader = _loader(noise_list, num_workers=2)
    first = _epoch(loader)
    fast = np.concatenate([b[1] for b in first])
    # batches 0 and 1 come from different workers; identical streams would repeat samples
    for i in range(len(fast)):
        for j in range(i + 1, len(fast)):
            assert not np.array_equal(fast[i], fast[j]), (i, j)
    loader.set_epoch(1)
    second = _epoch(loader)
    assert not np.array_equal(first[0][1], second[0][1])


def test_same_seed_reproduces_and_other_seed_differs(noise_list):
    a = _epoch(_loader(noise_list, num_workers=2, seed=9))
    b = _epoch(_loader(noise_list, num_workers=2, seed=9))
    c = _epoch(_loader(noise_list, num_workers=2, seed=10))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[1], y[1])
    assert not np.array_equal(a[0][1], c[0][1])


def test_main_process_loading_is_seeded_the_same_way(noise_list):
    a = _epoch(_loader(noise_list, num_workers=0, seed=3))
    b = _epoch(_loader(noise_list, num_workers=0, seed=3))
    np.testing.assert_array_equal(a[1][1], b[1][1])
    loader = _loader(noise_list, num_workers=0, seed=3)
    loader.set_epoch(4)
    assert not np.array_equal(_epoch(loader)[0][1], a[0][1])


def test_shuffle_changes_with_epoch(noise_list, tmp_path):
    lines = open(noise_list).read().splitlines()
    path = tmp_path / "labelled.list"
    path.write_text("".join(f"{line.rsplit(' ', 1)[0]} {i}\n" for i, line in enumerate(lines)))
    loader = _loader(str(path), num_workers=0, shuffle=True)
    orders = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        orders.append(np.concatenate([b[2] for b in _epoch(loader)]).ravel().tolist())
    assert all(sorted(o) == list(range(8)) for o in orders)
    assert orders[0] != orders[1] or orders[1] != orders[2]


def test_bad_videos_seen_by_workers_reach_the_main_process(noise_list, tmp_path):
    video = open(noise_list).readline().rsplit(" ", 1)[0]
    path = tmp_path / "mixed.list"
    path.write_text(f"{tmp_path}/gone1.mp4 0\n{tmp_path}/gone2.mp4 0\n" + f"{video} 1\n" * 6)
    loader = _loader(str(path), num_workers=2, num_retries=50)
    labels = np.concatenate([b[2] for b in _epoch(loader)]).ravel()
    assert labels.tolist() == [1] * 8
    assert sorted(loader.dataset.bad_videos()) == [f"{tmp_path}/gone1.mp4",
                                                   f"{tmp_path}/gone2.mp4"]


def test_shared_kinetics_videos_load_with_workers(shared_videos, tmp_path):
    names = ["demo.mp4", "example.avi", "test.mp4", "test.avi"]
    path = tmp_path / "shared.list"
    path.write_text("".join(f"{shared_videos / n} {i}\n" for i, n in enumerate(names)))
    pipeline = train_pipeline(128, 160, 112)
    batches = _epoch(_loader(str(path), num_workers=2, pipeline=pipeline))
    assert len(batches) == 2
    for slow, fast, _label in batches:
        assert slow.shape == (2, 3, 2, 112, 112) and fast.shape == (2, 3, 8, 112, 112)
        assert np.isfinite(fast).all() and fast.std() > 0.1  # real picture content
    assert sorted(np.concatenate([b[2] for b in batches]).ravel().tolist()) == [0, 1, 2, 3]


def test_the_seed_changes_the_shuffle_and_the_epoch_too():
    from paddlevideo.loader import build_dataloader

    data = list(range(40))

    def order(seed, epoch):
        loader = build_dataloader(data, batch_size=4, num_workers=0, seed=seed,
                                  shuffle=True, drop_last=True)
        loader.set_epoch(epoch)
        return [i for batch in loader.batch_sampler for i in batch]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(2, 0)
    assert order(1, 0) != order(1, 1)
    assert sorted(order(3, 5)) == data


def test_a_failing_worker_is_reported_as_such(tmp_path):
    from paddlevideo.loader import build_dataloader, build_dataset
    from paddlevideo.utils import get_config
    from tests.conftest import REPO_ROOT

    bad_list = tmp_path / "bad.list"
    bad_list.write_text("/nonexistent/a.mp4 0\n/nonexistent/b.mp4 1\n")
    cfg = get_config(str(REPO_ROOT / "configs/recognition/slowfast/slowfast_demo.yaml"),
                     [f"DATASET.train.file_path={bad_list}"])
    dataset = build_dataset((cfg.DATASET.train, cfg.PIPELINE.train))
    loader = build_dataloader(dataset, batch_size=2, num_workers=1)
    with pytest.raises(RuntimeError, match="data loader worker failed"):
        next(iter(loader))



def test_pyav_reader_starts_no_decoder_threads(noise_list):
    """Loader workers are forked from the main process, which may hold an open PyAV reader (the
    test-mode sampler keeps one): codec threads inherited half-way hang a worker that frees
    the reader, so the reader decodes and converts on the calling thread only."""
    import os

    from paddlevideo.loader.pipelines.decode import PyAVReader

    video = open(noise_list).readline().rsplit(" ", 1)[0]
    threads = set(os.listdir("/proc/self/task"))  # other tests' threads may end meanwhile
    reader = PyAVReader(video)
    assert reader.get_frames(np.arange(0, 40, 3)).shape == (14, 48, 64, 3)
    assert set(os.listdir("/proc/self/task")) - threads == set()
    reader.close()


LEAKED_DECODER = """
import gc, sys
import av
sys.path.insert(0, {root!r})
from tests.loader.test_dataloader import _epoch, _loader

container = av.open({video!r})
stream = container.streams.video[0]
stream.thread_type = "AUTO"  # FFmpeg frame threads
next(container.decode(stream))
holder = {{"stream": stream}}
holder["self"] = holder  # a cycle: only the garbage collector frees the decoder
del container, stream, holder
gc.disable()  # as if no collection ran between the leak and the loader's start
import paddlevideo.loader.builder as builder

started = builder._worker_started


def collect_then_start(worker_id):
    gc.collect()  # a collection in the worker frees whatever cycles it inherited
    started(worker_id)


builder._worker_started = collect_then_start
print(len(_epoch(_loader({list_path!r}, num_workers=2))))
"""


def test_workers_start_after_a_leaked_threaded_decoder_is_collected(noise_list):
    """A decoder with frame threads left in a reference cycle in the trainer process: the
    forked workers must not inherit it (they hung freeing it)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    video = os.path.join(os.path.dirname(noise_list), "noise.mp4")
    code = LEAKED_DECODER.format(root=str(REPO_ROOT), video=video, list_path=noise_list)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "4"
