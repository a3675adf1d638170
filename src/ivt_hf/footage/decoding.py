"""Reading footage: the frames of a video file (PyAV) or of a folder of still frames, each with its index and time,
and a copy of a video that browsers play, with the same timestamps.

Why PyAV and not OpenCV's `VideoCapture`: PyAV bundles FFmpeg in its wheels (no system ffmpeg), reads every
container FFmpeg reads, and gives each frame its presentation time exactly (`pts * time_base`, so frame 123 of a
10 fps video is at 12.3 s, not at an estimate); its errors say what failed, where `VideoCapture` only stops
returning frames. It also writes the playable copy. OpenCV is used only for its HOG people detector.

A video that cannot be opened, holds no frames, or ends before the frame count (or duration) its header announces
(a truncated download) is a `FootageReadError` naming the file; the frames before it have already been yielded, so
whatever was read is kept by the caller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputNotFoundError, IVTInputError

PLAYBACK_MAX_SIDE = 960  # the playable copy's longer side at most (the page shows frames from the full-size stills)
# (encoder, container, file suffix, options): H.264 in MP4 plays in every browser; where the FFmpeg build has no
# libx264, AV1 in WebM (Chromium, Firefox, recent Safari); then VP9
PLAYBACK_CODECS = (
    ("libx264", "mp4", ".mp4", {"preset": "veryfast", "crf": "26", "tune": "zerolatency"}),
    ("libsvtav1", "webm", ".webm", {"preset": "12"}),
    ("libvpx-vp9", "webm", ".webm", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}),
)


class FootageReadError(IVTInputError):
    """A video or still frame that cannot be read (whole); `frames_read` frames were read before it failed."""

    def __init__(self, message: str, *, path: str | os.PathLike, frames_read: int = 0):
        super().__init__(message)
        self.path, self.frames_read = str(path), frames_read


def require_av():
    try:
        import av
    except ImportError:
        raise IVTInputError(
            "indexing footage needs PyAV and OpenCV: pip install 'ivt_hf[video]' (av, opencv-python-headless)"
        ) from None
    return av


@dataclass
class DecodedFrame:
    """One frame of a source: its index (every frame counted, from 0), its time in seconds from the first frame
    (None for still frames without `--frames_fps`), and the decoded picture (a PyAV frame or RGB pixels)."""

    index: int
    time_s: float | None
    picture: Any

    def rgb(self) -> np.ndarray:
        if isinstance(self.picture, np.ndarray):
            return self.picture
        return self.picture.to_ndarray(format="rgb24")


@dataclass
class VideoInfo:
    width: int
    height: int
    rate: Fraction | None  # frames per second, as the container says (None if it does not)
    announced_frames: int | None  # from the header (frame count, or duration x rate), for the progress bar


class OpenedVideo:
    """The first video stream of a file, opened: `info` at once, then `frames()` once."""

    def __init__(self, path: str | os.PathLike):
        """A `FootageReadError` naming `path` when it is not a video that FFmpeg reads (empty, cut before its
        header, another kind of file); `InputNotFoundError` when there is no such file."""
        av = require_av()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputNotFoundError(f"video not found: {self.path}")
        try:
            self.container = av.open(str(self.path))
        except PermissionError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise FootageReadError(f"{self.path} is not a readable video ({_reason(error)})", path=path) from None
        if not self.container.streams.video:
            self.container.close()
            raise FootageReadError(f"{self.path} holds no video stream", path=path)
        self.stream = stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        announced = stream.frames or None
        if announced is None and rate:
            if stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = self.container.duration / 1_000_000 if self.container.duration else None
            announced = math.floor(seconds * float(rate) + 0.5) if seconds else None
        self.info = VideoInfo(stream.width, stream.height, Fraction(rate) if rate else None, announced)

    def frames(self) -> Iterator[DecodedFrame]:
        """Every frame, in presentation order, with its time from the first frame. Raises `FootageReadError`
        (after yielding what it could) when decoding fails, when nothing is decoded, or when the video ends before
        what its header announces (more than 1 % or 2 frames short: a truncated file). Closes the file."""
        av = require_av()
        path, count, first, time_s = self.path, 0, None, 0.0
        step = 1.0 / float(self.info.rate) if self.info.rate else 0.0
        try:
            for frame in self.container.decode(self.stream):
                if frame.pts is not None and frame.time_base is not None:
                    absolute = float(frame.pts * frame.time_base)
                    first = absolute if first is None else first
                    time_s = absolute - first
                else:  # no timestamp: the previous one plus a frame
                    time_s = time_s + step if count else 0.0
                yield DecodedFrame(count, time_s, frame)
                count += 1
        except (av.error.FFmpegError, ValueError) as error:
            where = f"frame {count} (after {time_s:.2f} s)" if count else "its first frame"
            raise FootageReadError(
                f"{path}: cannot decode {where}: {_reason(error)}", path=path, frames_read=count
            ) from None
        finally:
            self.container.close()
        if count == 0:
            raise FootageReadError(f"{path} holds no frames", path=path)
        announced = self.info.announced_frames
        if announced and announced - count > max(2, announced // 100):
            raise FootageReadError(
                f"{path} ends after {count} of the {announced} frames its header announces ({time_s:.2f} s read): "
                "truncated or damaged",
                path=path,
                frames_read=count,
            )


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def read_still_frames(paths: Sequence[Path], fps: float | None = None) -> Iterator[DecodedFrame]:
    """The images of a frame folder in name order, as RGB pixels; time = index / `fps` when given. An unreadable
    image ends the sequence with a `FootageReadError` naming it (the frames before it were yielded)."""
    from ..model.image_processing_ivt import to_rgb_uint8

    for index, path in enumerate(paths):
        try:
            pixels = to_rgb_uint8(path, name=str(path))
        except (OSError, ValueError) as error:
            raise FootageReadError(
                f"{path}: cannot read this frame ({error}); the {index} frames before it are kept",
                path=path,
                frames_read=index,
            ) from None
        yield DecodedFrame(index, index / fps if fps else None, np.asarray(pixels))


def sample_times(frames, sample_fps: float | None):
    """Mark the frames to look at: `(frame, sampled)` for every frame; with a time, the first frame at or after each
    multiple of 1 / `sample_fps` (so 2 per second of a 25 fps video: frames 0, 13, 25, ...: times 0, 0.52, 1.0);
    without a time (still frames) or without `sample_fps`, every frame."""
    next_time = 0.0
    for frame in frames:
        if frame.time_s is None or not sample_fps:
            yield frame, True
        elif frame.time_s >= next_time - 1e-9:
            next_time = (math.floor(frame.time_s * sample_fps + 1e-9) + 1) / sample_fps
            yield frame, True
        else:
            yield frame, False


class PlaybackWriter:
    """A copy of a video that browsers play, written frame by frame as it is decoded (`PLAYBACK_CODECS`: the first
    encoder this FFmpeg has), at most `PLAYBACK_MAX_SIDE` pixels on its longer side, each frame at the same time as
    in the source (milliseconds), so that the page can play from an entry's `time_s`."""

    def __init__(self, stem: Path, width: int, height: int, rate: Fraction | None):
        av = require_av()
        available = set(av.codecs_available)
        choice = next((codec for codec in PLAYBACK_CODECS if codec[0] in available), None)
        if choice is None:
            raise IVTInputError(
                "this FFmpeg (PyAV) has none of the encoders " + ", ".join(c[0] for c in PLAYBACK_CODECS)
            )
        name, container_format, suffix, options = choice
        scale = min(1.0, PLAYBACK_MAX_SIDE / max(width, height))
        self.width, self.height = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
        self.path = stem.with_suffix(suffix)
        self.codec = name
        extra = {"movflags": "+faststart"} if container_format == "mp4" else {}
        self.container = av.open(str(self.path), "w", format=container_format, options=extra)
        self.stream = self.container.add_stream(name, rate=rate or Fraction(25), options=dict(options))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        self.stream.time_base = Fraction(1, 1000)
        self._last_pts = -1

    def write(self, frame: DecodedFrame) -> None:
        av = require_av()
        picture = frame.picture
        if isinstance(picture, np.ndarray):
            picture = av.VideoFrame.from_ndarray(picture, format="rgb24")
        scaled = picture.reformat(self.width, self.height, "yuv420p")
        scaled.pts = max(round((frame.time_s or 0.0) * 1000), self._last_pts + 1)
        scaled.time_base = Fraction(1, 1000)
        self._last_pts = scaled.pts
        for packet in self.stream.encode(scaled):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


__all__ = [
    "DecodedFrame",
    "FootageReadError",
    "PlaybackWriter",
    "OpenedVideo",
    "VideoInfo",
    "read_still_frames",
    "sample_times",
]
