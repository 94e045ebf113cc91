"""``JobQueue`` bookkeeping without a model: jobs expire by age and by count, files go with them,
and a job whose input is not a video fails with its client-side name, not the server path."""
import threading
import time
from types import SimpleNamespace

from paddlevideo.serving.jobs import JobQueue


def finished_queue(tmp_path, count, **kwargs):
    """``count`` jobs on files that are not videos, all submitted before the first runs."""
    from paddlevideo.inference.preprocess import ClipPreprocessor
    from tests.inference.helpers import small_config

    submitted = threading.Event()

    def model():  # what TimelineRun reads of a predictor before it opens the source
        submitted.wait(30)
        return SimpleNamespace(preprocess=ClipPreprocessor(small_config()), batch_size=1,
                               class_names=["a", "b"])

    queue = JobQueue(str(tmp_path / "jobs"), model_factory=model, **kwargs)
    jobs = []
    for i in range(count):
        source = tmp_path / f"in{i}.bin"
        source.write_bytes(b"not a video")
        jobs.append(queue.submit(str(source), f"upload{i}.mp4", None))
    submitted.set()
    deadline = time.monotonic() + 30
    while queue.unfinished() and time.monotonic() < deadline:
        time.sleep(0.05)
    return queue, jobs


def test_failed_job_names_the_client_input_and_its_input_file_is_deleted(tmp_path):
    queue, (job,) = finished_queue(tmp_path, 1)
    record = queue.get(job.id).record()
    assert record["status"] == "failed" and "upload0.mp4" in record["error"]
    assert str(tmp_path) not in record["error"] and "cannot open" in record["error"]
    assert not (tmp_path / "in0.bin").exists()
    queue.close(5)


def test_jobs_expire_by_age_and_beyond_the_count_with_their_folders(tmp_path):
    queue, jobs = finished_queue(tmp_path, 4, ttl=60, max_finished=2)
    assert sorted(queue.expire()) == sorted(j.id for j in jobs[:2])  # the two oldest
    assert [j.id for j in jobs if queue.get(j.id)] == [j.id for j in jobs[2:]]
    assert not (tmp_path / "jobs" / f"job-{jobs[0].id}").exists()
    assert (tmp_path / "jobs" / f"job-{jobs[3].id}").is_dir()
    assert sorted(queue.expire(now=time.time() + 61)) == sorted(j.id for j in jobs[2:])
    assert queue.jobs == {}
    queue.close(5)
