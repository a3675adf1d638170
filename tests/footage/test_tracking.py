"""Tracking people over sampled frames (pure functions, no pixels): IoU, greedy matching, constant-velocity
prediction, the gap a track survives, appearance linking after a miss, the bounded candidate reservoir and the
choice of a few crops per track."""

from __future__ import annotations

import numpy as np
import pytest

from ivt_hf.footage.tracking import (
    CandidateReservoir,
    IoUTracker,
    appearance_histogram,
    box_iou,
    match_greedily,
    pick_spread,
    similarity,
)


def test_box_iou_is_exact():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no pixel
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_greedy_matching_takes_the_best_pair_first_and_each_side_once():
    # track 0 overlaps both detections, track 1 only the second: the best pair (0, 1) wins, track 1 gets nothing
    scores = {(0, 0): 0.4, (0, 1): 0.9, (1, 1): 0.5}
    assert match_greedily(scores) == [(0, 1)]
    assert match_greedily({(0, 0): 0.5, (1, 1): 0.5, (0, 1): 0.2}) == [(0, 0), (1, 1)]
    assert match_greedily({}) == []


def _walk(start_x: float, step_x: float, steps: int, y: float = 50.0):
    return [(start_x + step_x * i, y, start_x + step_x * i + 40, y + 100) for i in range(steps)]


def test_two_walkers_keep_their_ids_through_a_miss_by_their_velocity():
    tracker = IoUTracker(score=lambda c: c, min_iou=0.3, max_gap=1)
    left, right = _walk(0, 20, 6), _walk(400, -20, 6)  # 20 px a frame on 40 px wide boxes: IoU 1/3 a frame
    assert box_iou(left[1], left[3]) == 0.0  # two frames apart: no overlap at all without the prediction
    seen = {}
    for step, boxes in enumerate(zip(left, right)):
        if step == 2:  # the detector misses both at step 2
            assert tracker.update(step, [], []) == ([], [])
            continue
        ids, ended = tracker.update(step, list(boxes), [1.0, 1.0])
        seen[step] = ids
        assert ended == []
    assert seen == {step: [0, 1] for step in (0, 1, 3, 4, 5)}
    ended = tracker.finish()
    assert {track.track_id: track.detections for track in ended} == {0: 5, 1: 5}
    assert ended[0].velocity == pytest.approx((20.0, 0.0)) and ended[1].velocity == pytest.approx((-20.0, 0.0))


def test_a_track_survives_max_gap_missed_frames_and_ends_after():
    tracker = IoUTracker(score=lambda c: c, max_gap=2)
    box = (10, 10, 50, 110)
    assert tracker.update(0, [box], [1.0])[0] == [0]
    tracker.update(1, [], [])
    tracker.update(2, [], [])
    ids, ended = tracker.update(3, [box], [1.0])  # missed 2 frames: still track 0
    assert ids == [0] and ended == []
    for step in (4, 5, 6):
        assert tracker.update(step, [], [])[1] == []
    ids, ended = tracker.update(7, [box], [1.0])  # missed 3 frames: track 0 ended, a new one starts
    assert [track.track_id for track in ended] == [0] and ids == [1]


def test_after_a_miss_a_near_detection_that_looks_alike_continues_the_track_and_one_that_does_not_starts_a_new():
    red = np.zeros((100, 40, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((100, 40, 3), np.uint8)
    blue[..., 2] = 200
    looks = {"red": appearance_histogram(red), "blue": appearance_histogram(blue)}
    assert similarity(looks["red"], looks["red"]) == pytest.approx(1.0)
    assert similarity(looks["red"], looks["blue"]) == pytest.approx(0.0)
    for colour, expected in (("red", [0]), ("blue", [1])):
        tracker = IoUTracker(score=lambda c: c, min_iou=0.3, max_gap=3, max_jump=1.0, min_similarity=0.5)
        tracker.update(0, [(0, 0, 40, 100)], [1.0], [looks["red"]])
        # two frames later, 45 px to the right: no overlap, 0.45 heights away (within 1.0 x sqrt(2))
        ids, _ = tracker.update(2, [(45, 0, 85, 100)], [1.0], [looks[colour]])
        assert ids == expected, colour
    plain = IoUTracker(score=lambda c: c, max_gap=3)  # without appearances it is IoU only: a new track
    plain.update(0, [(0, 0, 40, 100)], [1.0])
    assert plain.update(2, [(45, 0, 85, 100)], [1.0])[0] == [1]


def test_the_reservoir_stays_bounded_and_spread_over_the_track():
    reservoir = CandidateReservoir(score=lambda item: item[1], capacity=8)
    for step in range(1000):
        reservoir.offer((step, (step * 37) % 101))  # (time, score)
    kept = reservoir.kept()
    assert len(kept) <= 8
    times = [time for time, _ in kept]
    assert times == sorted(times) and times[0] < 1000 / 8 and times[-1] >= 1000 - 1000 / 4  # the whole track
    # each kept item is the best of the stretch it stands for (stride 128: offers 0-127, 128-255, ...)
    assert kept[0] == max(((step, (step * 37) % 101) for step in range(128)), key=lambda item: item[1])


def test_pick_spread_takes_the_best_of_each_stretch():
    candidates = list(zip(range(9), [5, 9, 1, 2, 3, 8, 7, 4, 6]))  # (time, score)
    assert pick_spread(candidates, 3, score=lambda item: item[1]) == [(1, 9), (5, 8), (6, 7)]
    assert pick_spread(candidates[:2], 3, score=lambda item: item[1]) == candidates[:2]
    with pytest.raises(ValueError):
        pick_spread(candidates, 0, score=lambda item: item[1])
