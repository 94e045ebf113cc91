"""Window placement, segment merging (the flicker rule) and the segments CSV, on exact numbers."""
import numpy as np
import pytest

from paddlevideo.inference.timeline import (
    SegmentBuilder,
    WindowPlan,
    WindowResult,
    segments_csv,
    segments_csv_path,
)
from paddlevideo.loader.pipelines.functional import sample_clip_indices

NAMES = ("a", "b", "c")


def test_window_plan_places_clips_as_testing_does_at_any_fps():
    plan = WindowPlan(num_frames=8, sampling_rate=2, target_fps=30, fps=30, stride_seconds=0.5)
    assert plan.span == 16 and plan.stride_frames == 15
    assert plan.frame_indices(0).tolist() == [0, 2, 4, 6, 8, 10, 12, 15]
    assert plan.frame_indices(2).tolist() == (30 + plan.offsets).tolist()
    # a clip of exactly one window is the centred test clip of that clip
    assert plan.offsets.tolist() == sample_clip_indices(16, 8, 2, 30, 30, 0.5).tolist()
    fast = WindowPlan(8, 2, 30, fps=60, stride_seconds=0.25)
    assert fast.span == 32 and fast.window_seconds == pytest.approx(16 / 30)
    assert fast.start(3) == 45 and fast.last_frame(3) == 45 + 31
    assert fast.bounds(1) == pytest.approx((0.25, 0.25 + 16 / 30))


def test_short_video_window_repeats_the_last_frame_like_testing():
    plan = WindowPlan(8, 2, 30, 30, 0.25)
    assert plan.padded_indices(5).tolist() == sample_clip_indices(5, 8, 2, 30, 30, 0.5).tolist()
    assert plan.padded_indices(5).tolist() == [0, 2, 4, 4, 4, 4, 4, 4]


def windows(labels, stride=1.0, span=2.0):
    """Windows of the given top-1 labels, ``stride`` s apart, with probability 0.9 for the label
    and 0.05 for the others."""
    out = []
    for k, label in enumerate(labels):
        probs = np.full(3, 0.05)
        probs[label] = 0.9
        out.append(WindowResult(k, k * stride, k * stride + span, k * stride + span / 2,
                                [(label, NAMES[label], 0.9)], probs=probs))
    return out


def merged(labels, end=None):
    builder = SegmentBuilder(NAMES)
    for window in windows(labels):
        builder.push(window)
    return [(s.class_id, s.start, s.end, s.windows) for s in builder.segments(end=end)]


def test_consecutive_windows_of_one_class_join_with_midpoint_boundaries():
    # centres 1, 2, 3, 4, 5, 6: the boundary between windows 2 and 3 is at 3.5 s
    assert merged([0, 0, 0, 1, 1, 1], end=7.0) == [(0, 0.0, 3.5, 3), (1, 3.5, 7.0, 3)]


def test_one_window_flicker_inside_a_segment_does_not_split_it():
    builder = SegmentBuilder(NAMES)
    for window in windows([0, 0, 2, 0, 0]):
        builder.push(window)
    [segment] = builder.segments(end=6.0)
    assert (segment.class_id, segment.start, segment.end, segment.windows) == (0, 0.0, 6.0, 5)
    # the flicker window counts with its probability of the segment's class (0.05)
    assert segment.score == pytest.approx((0.9 * 4 + 0.05) / 5)


def test_two_windows_of_another_class_make_a_segment():
    assert merged([0, 0, 1, 1, 0, 0]) == [(0, 0.0, 2.5, 2), (1, 2.5, 4.5, 2), (0, 4.5, 7.0, 2)]


def test_a_change_at_the_first_or_last_window_is_its_own_segment():
    assert merged([1, 0, 0, 0]) == [(1, 0.0, 1.5, 1), (0, 1.5, 5.0, 3)]
    # the undecided last window is reported as its own segment
    assert merged([0, 0, 0, 2], end=5.5) == [(0, 0.0, 3.5, 3), (2, 3.5, 5.5, 1)]


def test_segments_csv_has_one_line_per_segment_next_to_the_json():
    rows = [{"file": "v.mp4", "segments": [
        {"start": 0.0, "end": 2.5, "class_id": 1, "class_name": "b", "score": 0.75},
        {"start": 2.5, "end": 6.0, "class_id": 0, "class_name": "a", "score": 0.5}]}]
    assert segments_csv(rows).splitlines() == [
        "file,start,end,class_id,class_name,score",
        "v.mp4,0.000,2.500,1,b,0.750000", "v.mp4,2.500,6.000,0,a,0.500000"]
    assert segments_csv_path("out/results.json") == "out/results_segments.csv"
