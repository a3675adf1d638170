"""Reading footage with PyAV: every frame with its exact time in three containers, sampling at --sample_fps, a
truncated, empty or unreadable file as one error naming it (after the frames that could be read), still frames, and
the copy browsers play keeping the source's times."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers.footage import FPS, FRAMES, HEIGHT, WIDTH, synthetic_frame, write_synthetic_video
from PIL import Image

pytest.importorskip("av")

from ivt_hf.errors import InputNotFoundError  # noqa: E402
from ivt_hf.footage.decoding import (  # noqa: E402
    FootageReadError,
    OpenedVideo,
    PlaybackWriter,
    read_still_frames,
    sample_times,
)

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner, on stderr


@pytest.mark.parametrize("kind", ["avi", "mp4", "mkv"])
def test_every_frame_comes_with_its_index_and_exact_time(tmp_path, kind):
    video = write_synthetic_video(tmp_path / f"street.{kind}", kind)
    opened = OpenedVideo(video)
    assert (opened.info.width, opened.info.height, opened.info.rate) == (WIDTH, HEIGHT, FPS)
    frames = list(opened.frames())
    assert [frame.index for frame in frames] == list(range(FRAMES))
    assert [frame.time_s for frame in frames] == pytest.approx([index / FPS for index in range(FRAMES)], abs=1e-9)
    for frame in frames[1:-4:13]:  # the picture written at that index (lossy codecs: nearer it than its neighbours)
        differences = [
            np.abs(frame.rgb().astype(int) - synthetic_frame(frame.index + shift).astype(int)).mean()
            for shift in (0, -1, 4)
        ]
        assert differences[0] < 8 and differences[0] < 0.8 * min(differences[1:]), (frame.index, differences)


def test_sampling_takes_the_first_frame_at_or_after_each_multiple_of_the_period(tmp_path):
    frames = list(OpenedVideo(write_synthetic_video(tmp_path / "street.avi")).frames())

    def sampled(fps):
        return [frame.index for frame, keep in sample_times(frames, fps) if keep]

    assert sampled(2.5) == list(range(0, FRAMES, 4))
    assert sampled(3.0) == [0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37]  # 1/3 s: frames at 0.4, 0.7, 1.0, ...
    assert sampled(100.0) == list(range(FRAMES))  # more than the video has: every frame, once
    assert sampled(None) == list(range(FRAMES))


def test_a_truncated_video_gives_its_frames_then_one_error_naming_it(tmp_path):
    whole = write_synthetic_video(tmp_path / "street.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    read = []
    with pytest.raises(FootageReadError) as caught:
        for frame in OpenedVideo(cut).frames():
            read.append(frame)
    error = caught.value
    assert str(cut) in str(error) and "truncated" in str(error) and f"of the {FRAMES} frames" in str(error)
    assert 10 < error.frames_read == len(read) < FRAMES
    assert [frame.time_s for frame in read] == pytest.approx([index / FPS for index in range(len(read))])


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 10, b"RIFF\x00\x00\x00\x00AVI LIST"])
def test_an_empty_or_foreign_file_is_one_error_naming_it(tmp_path, content):
    path = tmp_path / "camera1.avi"
    path.write_bytes(content)
    with pytest.raises(FootageReadError, match="camera1.avi is not a readable video"):
        OpenedVideo(path)
    with pytest.raises(InputNotFoundError, match="video not found"):
        OpenedVideo(tmp_path / "missing.mp4")


def test_a_video_without_frames_is_one_error(tmp_path):
    import av

    path = tmp_path / "blank.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        container.start_encoding()  # the header, and not one frame
    assert path.stat().st_size > 0
    with pytest.raises(FootageReadError, match="blank.mkv (holds no frames|is not a readable video)"):
        list(OpenedVideo(path).frames())


def test_still_frames_come_in_order_and_a_broken_one_ends_the_sequence_naming_it(tmp_path):
    paths = []
    for index in range(4):
        paths.append(tmp_path / f"{index:04d}.png")
        Image.fromarray(synthetic_frame(index)).save(paths[-1])
    paths[2].write_bytes(b"not a png")
    read = []
    with pytest.raises(FootageReadError) as caught:
        for frame in read_still_frames(paths, fps=5.0):
            read.append(frame)
    assert [(frame.index, frame.time_s) for frame in read] == [(0, 0.0), (1, 0.2)]
    assert str(paths[2]) in str(caught.value) and caught.value.frames_read == 2
    assert np.array_equal(read[1].rgb(), synthetic_frame(1))
    assert [frame.time_s for frame in read_still_frames(paths[:2])] == [None, None]  # no rate: no times


def test_the_playable_copy_keeps_every_frame_at_its_time(tmp_path):
    import av

    source = write_synthetic_video(tmp_path / "street.avi")
    opened = OpenedVideo(source)
    writer = PlaybackWriter(tmp_path / "copy", opened.info.width, opened.info.height, opened.info.rate)
    for frame in opened.frames():
        writer.write(frame)
    writer.close()
    assert writer.path.suffix in (".mp4", ".webm") and writer.path.is_file()
    with av.open(str(writer.path)) as copy:
        stream = copy.streams.video[0]
        assert stream.codec_context.name in ("h264", "av1", "libdav1d", "vp9")
        times = [frame.time for frame in copy.decode(stream)]
    assert times == pytest.approx([index / FPS for index in range(FRAMES)], abs=1e-3)
