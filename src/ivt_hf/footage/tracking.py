"""Linking one person across consecutive sampled frames and choosing a few crops per track.

Pure functions and one small state object, no pixels: a box is `(x0, y0, x1, y1)` in pixels (x1, y1 exclusive), an
appearance a normalised colour histogram of the person (`appearance_histogram`).

A track's next box is predicted from its last box and its smoothed displacement (constant velocity), so that a
walking person still overlaps the prediction at a low `--sample_fps`. A detection continues a track when it overlaps
the prediction (IoU at least `min_iou`) or, after a miss or a jump of the detector's box, when it is near it (the
centre within `max_jump` box heights, times the square root of the frames missed; a similar height) and looks
alike (histogram intersection at least `min_similarity` with the track's running appearance): IoU tracking plus
appearance similarity within a track. Pairs are matched greedily, the best (IoU + similarity) first. A track that
finds no detection for more than `max_gap` sampled frames ends, so a detector that misses a person for a while, or
loses them behind another, does not cut the track in pieces.

A track keeps a bounded, evenly spread set of candidates (`CandidateReservoir`): when it is full, neighbouring
candidates are merged pairwise, the better-scored one staying. At the end `pick_spread` splits what is left into
`k` consecutive groups and keeps the best of each, so a track of any length gives at most `k` crops, spread over
its time and each the best-scored of its stretch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

Box = tuple[float, float, float, float]
T = TypeVar("T")


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    areas = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return overlap / (areas - overlap)


def appearance_histogram(pixels: np.ndarray, bins: tuple[int, int, int] = (8, 3, 3)) -> np.ndarray:
    """A person's colours: the hue x saturation x value histogram (normalised to sum 1) of the middle of a crop
    (the central half of its width and 70 % of its height, the body rather than the background)."""
    height, width = pixels.shape[:2]
    body = pixels[int(height * 0.15) : max(int(height * 0.85), 1), int(width * 0.25) : max(int(width * 0.75), 1)]
    rgb = body.reshape(-1, 3).astype(np.float32) / 255.0
    if rgb.size == 0:
        return np.full(bins[0] * bins[1] * bins[2], 1.0 / (bins[0] * bins[1] * bins[2]), dtype=np.float32)
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    spread = np.maximum(high - low, 1e-6)
    red, green, blue = rgb.T
    hue = np.where(
        high == red,
        ((green - blue) / spread) % 6,
        np.where(high == green, (blue - red) / spread + 2, (red - green) / spread + 4),
    )
    hue = np.where(high - low <= 1e-6, 0.0, hue)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    histogram, _ = np.histogramdd(
        np.stack([hue, saturation, high], axis=1), bins=bins, range=((0, 6), (0, 1 + 1e-6), (0, 1 + 1e-6))
    )
    histogram = histogram.ravel().astype(np.float32)
    return histogram / histogram.sum()


def similarity(first: np.ndarray | None, second: np.ndarray | None) -> float:
    """Histogram intersection of two appearances (1: the same colours; 0 when either is unknown)."""
    if first is None or second is None:
        return 0.0
    return float(np.minimum(first, second).sum())


def centre_distance(first: Sequence[float], second: Sequence[float]) -> float:
    """How far apart the centres of two boxes are, in heights of the taller one."""
    dx = (first[0] + first[2] - second[0] - second[2]) / 2
    dy = (first[1] + first[3] - second[1] - second[3]) / 2
    return math.hypot(dx, dy) / max(first[3] - first[1], second[3] - second[1], 1e-6)


def height_ratio(first: Sequence[float], second: Sequence[float]) -> float:
    heights = sorted((first[3] - first[1], second[3] - second[1]))
    return heights[0] / heights[1] if heights[1] > 0 else 0.0


def match_greedily(scores: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """One-to-one pairs `(track index, detection index)` from the allowed pairs' scores, the highest first (ties
    by index, so the result does not depend on dictionary order), sorted."""
    used_tracks, used_found, matches = set(), set(), []
    for (i, j), _ in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        if i not in used_tracks and j not in used_found:
            used_tracks.add(i)
            used_found.add(j)
            matches.append((i, j))
    return sorted(matches)


def shifted(box: Sequence[float], dx: float, dy: float) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


class CandidateReservoir(Generic[T]):
    """At most `capacity` candidates of one track, in time order, spread evenly over the track: when full, neighbours
    are merged pairwise (the one with the higher `score(candidate)` stays), so memory stays bounded however long a
    person stays in view."""

    def __init__(self, score: Callable[[T], float], capacity: int = 64):
        if capacity < 2:
            raise ValueError(f"a reservoir holds at least 2 candidates, got {capacity}")
        self.score, self.capacity = score, capacity
        self.items: list[T] = []
        self.stride = 1  # how many consecutive offers each kept item stands for
        self._pending: T | None = None  # the best offer of the current stride, not yet kept
        self._pending_count = 0

    def offer(self, candidate: T) -> None:
        if self._pending is None or self.score(candidate) > self.score(self._pending):
            self._pending = candidate
        self._pending_count += 1
        if self._pending_count == self.stride:
            self.items.append(self._pending)
            self._pending, self._pending_count = None, 0
            if len(self.items) >= self.capacity:
                self.items = [max(self.items[i : i + 2], key=self.score) for i in range(0, len(self.items), 2)]
                self.stride *= 2

    def kept(self) -> list[T]:
        """The candidates, the best of an unfinished stride included."""
        return self.items + ([self._pending] if self._pending is not None else [])


def pick_spread(candidates: Sequence[T], k: int, score: Callable[[T], float]) -> list[T]:
    """At most `k` of `candidates` (in time order): split into `k` consecutive groups of nearly equal size, the
    best-scored of each group, in time order."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(candidates) <= k:
        return list(candidates)
    bounds = [round(i * len(candidates) / k) for i in range(k + 1)]
    return [max(candidates[bounds[i] : bounds[i + 1]], key=score) for i in range(k)]


@dataclass
class Track(Generic[T]):
    """One person followed over sampled frames: its id, its last box and where it moves, its candidates."""

    track_id: int
    box: Box
    step: int  # the sampled-frame number it was last seen at
    reservoir: CandidateReservoir[T]
    velocity: tuple[float, float] = (0.0, 0.0)  # displacement per sampled frame
    detections: int = 1
    first_step: int = 0
    appearance: np.ndarray | None = None  # running colour histogram (recent looks weigh more)

    def predicted(self, step: int) -> Box:
        gap = step - self.step
        return shifted(self.box, self.velocity[0] * gap, self.velocity[1] * gap)


@dataclass
class IoUTracker(Generic[T]):
    """Tracks over the sampled frames of one source. `update(step, boxes, candidates, appearances)` assigns a track
    id to each box (new ids count up from 0) and returns the tracks that ended; `finish()` ends the rest. Without
    appearances it is plain IoU tracking."""

    score: Callable[[T], float]
    min_iou: float = 0.3
    max_gap: int = 2
    max_jump: float = 1.0
    min_similarity: float = 0.5
    capacity: int = 64
    active: list[Track[T]] = field(default_factory=list)
    next_id: int = 0

    def allowed_pairs(self, step: int, boxes: Sequence[Box], appearances: Sequence[np.ndarray | None]):
        """`{(track index, detection index): IoU + similarity}` of the pairs that may be linked."""
        scores = {}
        for i, track in enumerate(self.active):
            gap = step - track.step
            predicted = track.predicted(step)
            for j, (box, looks) in enumerate(zip(boxes, appearances)):
                overlap, alike = box_iou(predicted, box), similarity(track.appearance, looks)
                near = (
                    centre_distance(predicted, box) <= self.max_jump * math.sqrt(gap)
                    and height_ratio(predicted, box) >= 0.6
                )
                if (overlap >= self.min_iou and overlap > 0) or (near and alike >= self.min_similarity):
                    scores[i, j] = overlap + alike
        return scores

    def update(
        self,
        step: int,
        boxes: Sequence[Box],
        candidates: Sequence[T],
        appearances: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[list[int], list[Track[T]]]:
        appearances = list(appearances) if appearances is not None else [None] * len(boxes)
        ended = [track for track in self.active if step - track.step > self.max_gap + 1]
        self.active = [track for track in self.active if track not in ended]
        matches = {j: i for i, j in match_greedily(self.allowed_pairs(step, boxes, appearances))}
        ids = []
        for j, (box, candidate, looks) in enumerate(zip(boxes, candidates, appearances)):
            if j in matches:
                track = self.active[matches[j]]
                gap = step - track.step
                moved = ((box[0] - track.box[0]) / gap, (box[1] - track.box[1]) / gap)
                if track.detections > 1:  # smoothed, so that one jittery box does not throw the prediction off
                    moved = ((moved[0] + track.velocity[0]) / 2, (moved[1] + track.velocity[1]) / 2)
                track.velocity, track.box, track.step = moved, tuple(box), step
                track.detections += 1
                if looks is not None:
                    track.appearance = looks if track.appearance is None else 0.7 * track.appearance + 0.3 * looks
            else:
                reservoir = CandidateReservoir(self.score, self.capacity)
                track = Track(self.next_id, tuple(box), step, reservoir, first_step=step, appearance=looks)
                self.active.append(track)
                self.next_id += 1
            track.reservoir.offer(candidate)
            ids.append(track.track_id)
        return ids, ended

    def finish(self) -> list[Track[T]]:
        ended, self.active = self.active, []
        return ended


__all__ = [
    "Box",
    "CandidateReservoir",
    "IoUTracker",
    "Track",
    "appearance_histogram",
    "box_iou",
    "centre_distance",
    "match_greedily",
    "pick_spread",
    "shifted",
    "similarity",
]
