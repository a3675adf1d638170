"""From footage to a few person crops per track: sample frames, detect people, link them over frames, crop.

`extract_people(sources, gallery, detector, settings)` reads each source (a video, or a folder of still frames) once,
looks at the frames sampled at `sample_fps`, keeps the people the detector finds (score at least `min_score`, box at
least `min_height` pixels tall), links them across sampled frames (`tracking.IoUTracker`) and, when a track ends,
writes at most `crops_per_track` crops of it (spread over its time, the best-scored of each stretch; `margin` of the
box's size added on each side) as JPEG files under `gallery/<source key>/crops/`, with the whole frame each comes
from (`frames/`) and, for a video, a copy that browsers play (`video.mp4` or `.webm`, same timestamps). Each crop
becomes a `FootageEntry`: crop path, source file, frame index, time, box, track id, score, frame and video files.

A source that cannot be read whole (unreadable, empty, truncated) is reported with the error naming the file; what
was read before the error is kept (its tracks are finished and cropped as usual).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputNotFoundError, IVTInputError
from .decoding import FootageReadError, OpenedVideo, PlaybackWriter, read_still_frames, sample_times
from .detection import PersonDetector
from .tracking import IoUTracker, Track, appearance_histogram, pick_spread

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CROP_QUALITY = 95
FRAME_QUALITY = 90


@dataclass(frozen=True)
class FootageSettings:
    """How footage becomes crops (recorded in the index's manifest)."""

    sample_fps: float = 2.5  # frames looked at per second (still frames: all of them, unless frames_fps is given)
    min_score: float = 0.5
    min_height: float = 96.0  # pixels; smaller people carry too little for a description to match
    margin: float = 0.1  # of the box's width / height, added on each side of a crop
    crops_per_track: int = 3
    min_iou: float = 0.3  # a detection continues a track when it overlaps the track's predicted box this much,
    max_jump: float = 1.0  # or when its centre is this many box heights from it (x sqrt of frames missed)
    min_similarity: float = 0.5  # and it looks this much alike (colour histogram intersection)
    track_gap_s: float = 3.0  # seconds a track may go unseen before it ends (still frames without times: 2 frames)
    frames_fps: float | None = None  # the frame rate of still-frame folders, when known (gives times)
    playback: bool = True  # write a copy of each video that browsers play
    detector_batch: int = 4

    def __post_init__(self):
        checks = {
            "sample_fps": self.sample_fps > 0,
            "min_score": 0 <= self.min_score <= 1,
            "min_height": self.min_height >= 0,
            "margin": 0 <= self.margin <= 1,
            "crops_per_track": self.crops_per_track >= 1,
            "min_iou": 0 < self.min_iou <= 1,
            "max_jump": self.max_jump >= 0,
            "min_similarity": 0 <= self.min_similarity <= 1,
            "track_gap_s": self.track_gap_s >= 0,
            "frames_fps": self.frames_fps is None or self.frames_fps > 0,
            "detector_batch": self.detector_batch >= 1,
        }
        wrong = [name for name, ok in checks.items() if not ok]
        if wrong:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in wrong)
            raise IVTInputError(f"footage settings out of range: {shown}")


@dataclass(frozen=True)
class FootageSource:
    """A video file, or one folder's sequence of still frames (`frames`, in name order)."""

    kind: str  # "video" or "frames"
    path: Path
    frames: tuple[Path, ...] = ()

    @property
    def key(self) -> str:
        """The source's folder name in the gallery: readable, and unique per absolute path."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", self.path.stem if self.kind == "video" else self.path.name)[:40]
        digest = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]
        return f"{stem.strip('._') or 'source'}-{digest}"


@dataclass(frozen=True)
class FootageEntry:
    """One crop of one person: where it is (`path`, under the gallery root) and where it comes from."""

    path: str
    source: str  # the video file, or the still frame, as an absolute path
    frame: int  # the frame's index in the source (every frame counted from 0; still frames: in name order)
    time_s: float | None  # seconds from the source's first frame (None: still frames without --frames_fps)
    box: tuple[int, int, int, int]  # the detector's box (x0, y0, x1, y1) in the frame's pixels, before the margin
    track: int  # the person's track in this source (0, 1, ...)
    score: float
    frame_file: str  # the whole frame, under the gallery root
    video_file: str | None  # the playable copy of the video, under the gallery root

    def record(self) -> dict[str, Any]:
        """What the manifest keeps for this entry (the path is in its `paths` list)."""
        record = asdict(self)
        del record["path"]
        record["box"] = list(self.box)
        return record


@dataclass
class SourceReport:
    source: str
    key: str
    kind: str
    frames_read: int = 0
    frames_sampled: int = 0
    detections: int = 0
    tracks: int = 0
    crops: int = 0
    error: str | None = None
    video_file: str | None = None
    seconds: float = 0.0


@dataclass
class _Candidate:
    frame: int
    time_s: float | None
    box: tuple[int, int, int, int]
    score: float
    crop: np.ndarray
    whole: _WholeFrame


@dataclass
class _WholeFrame:
    """A sampled frame that holds people, kept as JPEG bytes while a candidate of it may still be picked."""

    index: int
    source_file: str
    jpeg: bytes


def footage_sources(videos: Sequence[str | Path] = (), frame_folders: Sequence[str | Path] = ()) -> list[FootageSource]:
    """The sources to read, checked before anything is read: every video file exists; every frame folder holds
    images (each sub-folder is its own sequence, e.g. one camera)."""
    sources = []
    for video in videos:
        path = Path(video)
        if not path.is_file():
            raise InputNotFoundError(f"video not found: {path}")
        sources.append(FootageSource("video", path.absolute()))
    for folder in frame_folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputNotFoundError(f"frame folder not found: {folder}")
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise IVTInputError(f"no still frames ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
        groups: dict[Path, list[Path]] = {}
        for image in images:
            groups.setdefault(image.parent, []).append(image.absolute())
        sources += [FootageSource("frames", parent.absolute(), tuple(paths)) for parent, paths in groups.items()]
    keys = [source.key for source in sources]
    if len(set(keys)) != len(keys):
        raise IVTInputError("the same video or frame folder is named twice")
    return sources


def crop_box(box: Sequence[float], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The crop around a detection: `margin` of its width and height added on each side, in whole pixels, inside
    the frame."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    return (
        max(0, math.floor(x0 - dx)),
        max(0, math.floor(y0 - dy)),
        min(width, math.ceil(x1 + dx)),
        min(height, math.ceil(y1 + dy)),
    )


@dataclass
class _SourceState:
    source: FootageSource
    folder: Path
    report: SourceReport
    tracker: IoUTracker | None
    video_file: str | None = None
    written_frames: set[int] = field(default_factory=set)
    pending: list[tuple[int, Any, np.ndarray]] = field(default_factory=list)  # (step, frame, pixels)
    step: int = 0


class PeopleExtractor:
    """Reads sources one after the other into `gallery`; `entries` and `reports` grow as it goes."""

    def __init__(self, gallery: Path, detector: PersonDetector, settings: FootageSettings, progress: bool = True):
        self.gallery, self.detector, self.settings, self.progress = Path(gallery), detector, settings, progress
        self.entries: list[FootageEntry] = []
        self.reports: list[SourceReport] = []

    def extract(self, source: FootageSource) -> SourceReport:
        start = time.perf_counter()
        folder = self.gallery / source.key
        report = SourceReport(str(source.path), source.key, source.kind)
        settings = self.settings
        state = _SourceState(source, folder, report, None)
        playback: PlaybackWriter | None = None
        try:
            if source.kind == "video":
                opened = OpenedVideo(source.path)
                frames, total, info = opened.frames(), opened.info.announced_frames, opened.info
                rate = float(opened.info.rate) if opened.info.rate else settings.sample_fps
            else:
                frames, total, info = read_still_frames(source.frames, settings.frames_fps), len(source.frames), None
                rate = settings.frames_fps
            state.tracker = self._tracker(rate)
            (folder / "crops").mkdir(parents=True)
            (folder / "frames").mkdir()
            name = source.path.name
            with tqdm(total=total, desc=f"reading {name}", unit="frame", disable=not self.progress) as bar:
                for frame, sampled in sample_times(frames, settings.sample_fps):
                    report.frames_read += 1
                    if info is not None and settings.playback:
                        if playback is None:
                            playback = PlaybackWriter(folder / "video", info.width, info.height, info.rate)
                        playback.write(frame)
                    if sampled:
                        state.pending.append((state.step, frame, frame.rgb()))
                        state.step += 1
                        report.frames_sampled += 1
                        if len(state.pending) >= settings.detector_batch:
                            self._detect(state)
                    bar.update(1)
                    bar.set_postfix(people=report.detections, refresh=False)
        except FootageReadError as error:
            report.error = str(error)
        finally:
            if playback is not None:
                playback.close()
                state.video_file = report.video_file = playback.path.relative_to(self.gallery).as_posix()
        if state.tracker is not None:
            self._detect(state)
            for track in state.tracker.finish():
                self._keep(track, state)
        if folder.is_dir() and not any(folder.rglob("*.*")):
            for empty in (folder / "crops", folder / "frames", folder):
                empty.rmdir()
        report.seconds = time.perf_counter() - start
        self.reports.append(report)
        return report

    def _tracker(self, rate: float | None) -> IoUTracker:
        """A tracker whose gap, in sampled frames, is `track_gap_s` at the rate frames are looked at (`rate`: the
        source's frame rate; None for still frames without one: 2 frames)."""
        settings = self.settings
        if rate:
            gap = math.ceil(settings.track_gap_s * min(rate, settings.sample_fps) - 1e-9)
        else:
            gap = 2
        return IoUTracker(
            lambda candidate: candidate.score,
            min_iou=settings.min_iou,
            max_gap=gap,
            max_jump=settings.max_jump,
            min_similarity=settings.min_similarity,
        )

    def _detect(self, state: _SourceState) -> None:
        """Detect people in the pending sampled frames and feed them to the tracker; crop the tracks that end."""
        if not state.pending:
            return
        settings, report = self.settings, state.report
        found = self.detector.detect([pixels for _, _, pixels in state.pending])
        for (step, frame, pixels), people in zip(state.pending, found):
            people = [p for p in people if p.score >= settings.min_score and p.height >= settings.min_height]
            report.detections += len(people)
            whole = None
            if people:
                source_file = str(state.source.frames[frame.index]) if state.source.kind == "frames" else report.source
                whole = _WholeFrame(frame.index, source_file, _jpeg(pixels, FRAME_QUALITY))
            height, width = pixels.shape[:2]
            candidates, appearances = [], []
            for person in people:
                x0, y0, x1, y1 = crop_box(person.box, settings.margin, width, height)
                box = tuple(int(round(v)) for v in person.box)
                candidates.append(
                    _Candidate(frame.index, frame.time_s, box, person.score, pixels[y0:y1, x0:x1].copy(), whole)
                )
                appearances.append(appearance_histogram(pixels[box[1] : box[3], box[0] : box[2]]))
            _, ended = state.tracker.update(step, [p.box for p in people], candidates, appearances)
            for track in ended:
                self._keep(track, state)
        state.pending = []

    def _keep(self, track: Track, state: _SourceState) -> None:
        """Write the crops chosen from a finished track, and the whole frames they come from."""
        picks = pick_spread(track.reservoir.kept(), self.settings.crops_per_track, lambda c: c.score)
        state.report.tracks += 1
        for pick in picks:
            crop_file = state.folder / "crops" / f"track{track.track_id:05d}_frame{pick.frame:07d}.jpg"
            frame_file = state.folder / "frames" / f"frame{pick.frame:07d}.jpg"
            _save_jpeg(pick.crop, crop_file, CROP_QUALITY)
            if pick.frame not in state.written_frames:
                frame_file.write_bytes(pick.whole.jpeg)
                state.written_frames.add(pick.frame)
            self.entries.append(
                FootageEntry(
                    path=crop_file.relative_to(self.gallery).as_posix(),
                    source=pick.whole.source_file,
                    frame=pick.frame,
                    time_s=None if pick.time_s is None else round(pick.time_s, 6),
                    box=pick.box,
                    track=track.track_id,
                    score=round(pick.score, 6),
                    frame_file=frame_file.relative_to(self.gallery).as_posix(),
                    video_file=state.video_file,
                )
            )
            state.report.crops += 1


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _save_jpeg(pixels: np.ndarray, path: Path, quality: int) -> None:
    path.write_bytes(_jpeg(pixels, quality))


def extract_people(
    sources: Sequence[FootageSource],
    gallery: str | Path,
    detector: PersonDetector,
    settings: FootageSettings | None = None,
    *,
    progress: bool = True,
) -> tuple[list[FootageEntry], list[SourceReport]]:
    """`(entries, reports)`: the crops of every source (written under `gallery`) and what each source gave."""
    extractor = PeopleExtractor(Path(gallery), detector, settings or FootageSettings(), progress=progress)
    for source in sources:
        extractor.extract(source)
    return extractor.entries, extractor.reports


__all__ = [
    "FootageEntry",
    "FootageSettings",
    "FootageSource",
    "PeopleExtractor",
    "SourceReport",
    "crop_box",
    "extract_people",
    "footage_sources",
]
