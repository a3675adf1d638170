"""An index of the people in footage (`ivt index build --video / --frames`): every entry records its source, frame,
time, box and track, checked against a synthetic video of two figures at known places and times; the crops are
files of the index folder; a truncated, empty or unreadable video is one error naming it and what was read is
kept; crafted footage records are refused; `ivt search` prints where and when. The last test takes a real street
video (OpenCV's vtest.avi, from Debian's opencv-doc: scripts/fetch_test_video.sh) through the command."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.commands import error_lines, run_cli, save_tiny_model_folder
from helpers.footage import (
    FPS,
    FRAMES,
    HEIGHT,
    WIDTH,
    ColourDetector,
    figure_boxes,
    save_tiny_detector,
    synthetic_frame,
    write_synthetic_video,
)
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("cv2")

from ivt_hf.footage import FootageReadError, FootageSettings  # noqa: E402
from ivt_hf.footage.extraction import crop_box  # noqa: E402
from ivt_hf.hub.folder import load_model_and_processor  # noqa: E402
from ivt_hf.search import GalleryIndex, GalleryIndexError  # noqa: E402
from ivt_hf.search.footage_index import build_footage_index  # noqa: E402


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A tiny IVT model folder, the synthetic video and the tiny random RT-DETR folder."""
    root = tmp_path_factory.mktemp("footage")
    save_tiny_model_folder(root / "model")
    write_synthetic_video(root / "street.avi")
    save_tiny_detector(root / "rtdetr")
    return root


def _build(footage: Path, output: Path, **kwargs):
    model, processor = load_model_and_processor(str(footage / "model"))
    kwargs.setdefault("videos", [footage / "street.avi"])
    return build_footage_index(model, processor, output, detector=ColourDetector(), progress=False, **kwargs)


def test_entries_record_source_frame_time_box_and_track(footage, tmp_path):
    report = _build(footage, tmp_path / "index")
    (source,) = report.sources
    assert (source.frames_read, source.frames_sampled, source.detections, source.tracks, source.crops) == (
        FRAMES,
        10,  # 2.5 per second of a 10 fps video: frames 0, 4, ..., 36
        20,
        2,
        6,
    )
    index = GalleryIndex.load(tmp_path / "index")
    assert len(index) == 6 and index.manifest["root"] == str((tmp_path / "index" / "gallery").resolve())
    tracks: dict[int, list[dict]] = {}
    for path, record in zip(index.paths, index.footage):
        tracks.setdefault(record["track"], []).append(record)
        assert record["source"] == str((footage / "street.avi").absolute())
        assert record["time_s"] == pytest.approx(record["frame"] / FPS, abs=1e-9)
        crop = Image.open(index.resolve(path))
        x0, y0, x1, y1 = crop_box(record["box"], 0.1, WIDTH, HEIGHT)
        assert crop.size == (x1 - x0, y1 - y0)
        whole = np.asarray(Image.open(index.resolve(record["frame_file"])))
        assert whole.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(whole[y0:y1, x0:x1].astype(int) - np.asarray(crop).astype(int)).mean() < 3  # the same pixels
        assert np.abs(whole.astype(int) - synthetic_frame(record["frame"]).astype(int)).mean() < 8  # of that frame
    assert sorted(tracks) == [0, 1]
    for track, colour in ((0, "red"), (1, "blue")):  # one figure per track, all along
        # 10 candidates of equal score in 3 stretches (frames 0-8, 12-24, 28-36): the first of each
        assert [record["frame"] for record in tracks[track]] == [0, 12, 28]
        for record in tracks[track]:
            truth = figure_boxes(record["frame"])[colour]
            assert max(abs(a - b) for a, b in zip(record["box"], truth)) <= 2, (record, truth)
    video = index.resolve(index.footage[0]["video_file"])
    assert video.suffix in (".mp4", ".webm") and video.stat().st_size > 1000
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["footage_settings"]["detector"] == "colour-test-detector"
    assert manifest["footage_sources"][0]["crops"] == 6 and manifest["skipped"] == []
    model, processor = load_model_and_processor(str(footage / "model"))
    hits = index.search("a person in a red coat", model, processor, k=6)[0]
    assert {hit.path: hit.footage for hit in hits} == dict(zip(index.paths, index.footage))


def test_still_frame_folders_are_sequences_with_their_own_files_and_times(footage, tmp_path):
    for camera in ("cam1", "cam2"):
        (tmp_path / "frames" / camera).mkdir(parents=True)
        for index in range(0, 12):
            Image.fromarray(synthetic_frame(index)).save(tmp_path / "frames" / camera / f"{index:05d}.png")
    settings = FootageSettings(frames_fps=10.0, sample_fps=5.0)
    report = _build(footage, tmp_path / "index", videos=[], frame_folders=[tmp_path / "frames"], settings=settings)
    assert [(source.frames_read, source.frames_sampled, source.tracks) for source in report.sources] == [(12, 6, 2)] * 2
    index = GalleryIndex.load(tmp_path / "index")
    for record in index.footage:
        camera = "cam1" if "/cam1/" in record["source"] else "cam2"
        assert record["source"] == str(tmp_path / "frames" / camera / f"{record['frame']:05d}.png")
        assert record["time_s"] == pytest.approx(record["frame"] / 10) and record["video_file"] is None
        assert record["frame"] % 2 == 0  # 5 of 10 frames a second


def test_a_truncated_video_is_one_error_and_the_index_keeps_what_was_read(footage, tmp_path):
    whole = (footage / "street.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FootageReadError) as caught:
        _build(footage, tmp_path / "index", videos=[footage / "street.avi", cut])
    message = str(caught.value)
    assert str(cut) in message and "truncated" in message and "keeps what was read" in message
    assert "\n" not in message
    index = GalleryIndex.load(tmp_path / "index")  # in place, with both videos' people
    sources = {record["source"] for record in index.footage}
    assert sources == {str(footage / "street.avi"), str(cut)}
    read = caught.value.report.sources[1].frames_read
    assert 10 < read < FRAMES
    assert all(record["frame"] < read for record in index.footage if record["source"] == str(cut))
    assert index.manifest["skipped"] == [{"path": str(cut), "error": caught.value.report.sources[1].error}]

    report = _build(footage, tmp_path / "accepted", videos=[cut], on_invalid="skip")  # accepted: listed, no error
    assert [item["path"] for item in report.skipped] == [str(cut)]


@pytest.mark.parametrize("content", [b"", b"not a video at all\n"])
def test_an_unreadable_or_empty_video_alone_is_one_error_and_writes_nothing(footage, tmp_path, content):
    bad = tmp_path / "camera.mp4"
    bad.write_bytes(content)
    with pytest.raises(FootageReadError, match=r"camera.mp4 is not a readable video"):
        _build(footage, tmp_path / "index", videos=[bad])
    assert not (tmp_path / "index").exists()
    with pytest.raises(GalleryIndexError, match="no person found in 1 source"):
        _build(footage, tmp_path / "index", settings=FootageSettings(min_height=500))
    assert not (tmp_path / "index").exists()


def _footage_index(footage: Path, folder: Path) -> Path:
    if not folder.exists():
        _build(footage, folder)
    return folder


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda record: record.update(frame_file="../../../etc/hostname.jpg"), "outside the gallery root"),
        (lambda record: record.update(video_file="/etc/ssl/video.mp4"), "outside the gallery root"),
        (lambda record: record.update(frame_file="frames/notes.txt"), "not a .jpg"),
        (lambda record: record.update(box="0,0,1,1"), "wrong type"),
        (lambda record: record.update(extra=1), "must hold exactly"),
    ],
)
def test_crafted_footage_records_are_refused_before_anything_is_opened(footage, tmp_path, change, why):
    folder = tmp_path / "index"
    shutil.copytree(_footage_index(footage, tmp_path / "built"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest["footage"][2])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GalleryIndexError, match=f"footage record 2 .*{re.escape(why)}"):
        GalleryIndex.load(folder)


def test_an_index_without_footage_records_loads_as_before(footage, tmp_path):
    folder = tmp_path / "index"
    shutil.copytree(_footage_index(footage, tmp_path / "built"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["footage"]  # as every index written before footage existed
    (folder / "manifest.json").write_text(json.dumps(manifest))
    index = GalleryIndex.load(folder)
    assert index.footage == [None] * len(index)
    model, processor = load_model_and_processor(str(footage / "model"))
    assert all(hit.footage is None for hit in index.search("a person", model, processor, k=3)[0])
    index.save(tmp_path / "saved")  # and it is saved without footage records
    assert "footage" not in json.loads((tmp_path / "saved" / "manifest.json").read_text())


def test_the_space_export_carries_the_frames_videos_and_records_of_footage(footage, tmp_path):
    pytest.importorskip("gradio")
    from ivt_hf.hub.space import export_space

    built = _footage_index(footage, tmp_path / "built")
    export_space(tmp_path / "space", str(footage / "model"), built, package="ivt_hf")
    original, exported = GalleryIndex.load(built), GalleryIndex.load(tmp_path / "space" / "index")
    assert exported.paths == original.paths and exported.footage == original.footage  # the same names under gallery/
    for record in exported.footage:
        for key in ("frame_file", "video_file"):
            assert exported.resolve(record[key]).read_bytes() == original.resolve(record[key]).read_bytes()


def test_the_command_builds_with_a_transformers_detector_and_search_prints_where_and_when(footage, tmp_path, capsys):
    output = tmp_path / "index"
    argv = f"index build --model {footage / 'model'} --video {footage / 'street.avi'} --output_dir {output}"
    argv += f" --detector {footage / 'rtdetr'} --min_score 0 --min_height 0 --crops_per_track 2"
    code, out, err = run_cli(argv.split(), capsys)
    assert code == 0, err
    assert f"{footage / 'street.avi'}: 40 frames read, 10 looked at" in out and "crops of people" in out
    index = GalleryIndex.load(output)
    assert index.manifest["footage_settings"]["detector"] == str(footage / "rtdetr") and len(index) > 0
    code, out, err = run_cli(["search", "--index", str(output), "a person", "-k", "3"], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(lines) == 3
    records = dict(zip(index.paths, index.footage))
    for line in lines:
        path = line.split()[2]
        record = records[path]
        x0, y0, x1, y1 = record["box"]
        expected = (
            f"(street.avi at {record['time_s']:.2f} s, frame {record['frame']}, track {record['track']}, "
            f"box ({x0}, {y0}, {x1}, {y1}))"
        )
        assert line.endswith(expected), (line, expected)


def test_the_command_takes_images_or_footage_one_of_them(footage, tmp_path, capsys):
    base = f"index build --model {footage / 'model'} --output_dir {tmp_path / 'index'}"
    for extra in (f" --images {tmp_path} --video {footage / 'street.avi'}", ""):
        code, _, err = run_cli((base + extra).split(), capsys)
        assert code == 2 and error_lines(err) == [
            "error: give --images DIR, or --video FILE... / --frames DIR... (one kind of gallery per index)"
        ]
    code, _, err = run_cli((base + f" --video {tmp_path / 'missing.mp4'} --detector hog").split(), capsys)
    assert code == 2 and error_lines(err) == [f"error: video not found: {tmp_path / 'missing.mp4'}"]
    assert not (tmp_path / "index").exists()


VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"


def _street_video() -> Path | None:
    """OpenCV's vtest.avi, where scripts/fetch_test_video.sh puts it (or Debian's opencv-doc installed)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ivt_hf" / "vtest.avi"
    for candidate in (os.environ.get("IVT_TEST_VIDEO"), cache, "/usr/share/doc/opencv-doc/examples/data/vtest.avi"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def test_a_real_street_video_through_the_command(footage, tmp_path, capsys):
    """vtest.avi: 795 frames (768 x 576, 10 fps) of people walking on a campus path, OpenCV's sample (Apache-2.0 /
    BSD-3-Clause, in Debian's opencv-doc). HOG at 2.5 frames a second; about a minute on 2 cores."""
    import hashlib

    import av
    import cv2

    video = _street_video()
    if video is None:
        if os.environ.get("IVT_REQUIRE_VIDEO") == "1":
            pytest.fail("vtest.avi is missing: run scripts/fetch_test_video.sh (IVT_REQUIRE_VIDEO=1 is set)")
        pytest.skip("vtest.avi not found: bash scripts/fetch_test_video.sh")
    assert hashlib.sha256(video.read_bytes()).hexdigest() == VTEST_SHA256
    output = tmp_path / "index"
    argv = f"index build --model {footage / 'model'} --video {video} --detector hog --output_dir {output}"
    code, out, err = run_cli(argv.split(), capsys)
    assert code == 0, err
    index = GalleryIndex.load(output)
    (source,) = index.manifest["footage_sources"]
    assert (source["frames_read"], source["frames_sampled"]) == (795, 199)
    assert source["detections"] >= 5 * source["crops"] == 5 * len(index), source  # tracks cut the crops 5 times
    assert source["tracks"] * 3 >= source["crops"] > 0

    frames = {}  # the frames of the entries, decoded again (PyAV), and OpenCV's own decoding of a few
    with av.open(str(video)) as container:
        wanted = {record["frame"] for record in index.footage}
        for number, frame in enumerate(container.decode(video=0)):
            if number in wanted:
                frames[number] = frame.to_ndarray(format="rgb24")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    for record in index.footage:
        assert record["time_s"] == pytest.approx(record["frame"] / 10, abs=1e-9)  # 10 fps: frame n at n / 10 s
        x0, y0, x1, y1 = record["box"]
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < y1 <= 576 and y1 - y0 >= 96
        stored = np.asarray(Image.open(index.resolve(record["frame_file"]))).astype(int)
        assert np.abs(stored - frames[record["frame"]]).mean() < 3  # the stored frame is that frame
    capture = cv2.VideoCapture(str(video))  # another decoder agrees on which frame a number is
    for record in index.footage[:: max(1, len(index) // 4)]:
        capture.set(cv2.CAP_PROP_POS_FRAMES, record["frame"])
        ok, bgr = capture.read()
        assert ok and np.abs(bgr[..., ::-1].astype(int) - frames[record["frame"]]).mean() < 3
        # and the box is where OpenCV's HOG, run directly on that frame, finds a person
        rects, _ = hog.detectMultiScale(frames[record["frame"]], winStride=(8, 8), padding=(8, 8), scale=1.05)
        found = [(x, y, x + w, y + h) for x, y, w, h in np.asarray(rects).reshape(-1, 4)]
        assert tuple(record["box"]) in found
    capture.release()

    code, out, err = run_cli(["search", "--index", str(output), "a man in a dark coat", "-k", "2"], capsys)
    assert code == 0 and re.search(r"\(vtest\.avi at \d+\.\d\d s, frame \d+, track \d+, box \(", out), out
