"""Galleries that grow (issue 28): `ivt index add` / `ivt index remove` keep an index equal to a fresh build of the
same files (embeddings, manifest, search), refuse another model and folders ivt_hf did not write, leave the old index
whole when the disk is full, keep the FAISS cache exact (extended, or built again, never read stale), and
`ivt search --where / --after / --before` searches a part of the gallery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.commands import error_lines, run_cli, save_tiny_model_folder, write_camera_gallery
from PIL import Image

from ivt_hf import IVTModel, IVTProcessor
from ivt_hf.outputs import MARKER
from ivt_hf.search import FaissSettings, GalleryIndex, build_faiss_index, cached_faiss_index
from ivt_hf.search.faiss_cache import faiss_cache_path
from ivt_hf.search.growing import add_images, select_entries

QUERIES = ["a man in a red coat", "a woman with a black bag", "someone walking"]


def _model(folder: Path, seed: int) -> Path:
    return save_tiny_model_folder(folder, seed=seed, num_hidden_layers=2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("growing_models")
    return _model(root / "model", seed=0), _model(root / "other", seed=1)


def _gallery(folder: Path) -> Path:
    """camA: 6 images, camB: 5 images (one unreadable), random pixels."""
    write_camera_gallery(folder)
    (folder / "camB" / "004.png").write_bytes(b"not a png")
    return folder


def _build(model: Path, images: Path, output: Path, capsys) -> None:
    """`ivt index build`, one image per batch: a CPU encodes an image to the last bit the same only in a batch of the
    same size (another batch size moves an embedding by up to 1 ulp, 6e-8), and the add's batches hold other images
    than the fresh build's."""
    flags = f"index build --model {model} --images {images} --output_dir {output} --on_invalid skip --batch_size 1"
    code, out, err = run_cli(flags.split(), capsys)
    assert code == 0, err


def _state(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _top10(index: GalleryIndex, model_dir: Path, **options) -> list[list[tuple[str, float]]]:
    model, processor = IVTModel.from_pretrained(model_dir), IVTProcessor.from_pretrained(model_dir)
    results = index.search(QUERIES, model.eval(), processor, k=10, **options)
    return [[(hit.path, hit.score) for hit in hits] for hits in results]


def test_add_then_remove_equals_a_fresh_build_of_the_same_files(models, tmp_path, capsys):
    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    grown = tmp_path / "grown"
    _build(model, gallery / "camA", grown, capsys)
    before = GalleryIndex.load(grown)
    assert _top10(before, model, use_faiss=True)  # a flat FAISS cache of the camA index, to be extended by the add

    flags = f"index add {grown} --images {gallery} --on_invalid skip --batch_size 1"
    code, out, err = run_cli(flags.split(), capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"6 already in the index, not added again (first: {gallery.resolve()}/camA/000.png)",
        f"added 4, 1 skipped, removed 0: {grown} now holds 10 entries",
        f"skipped: {GalleryIndex.load(grown).skipped[0]['error']}",
    ]
    (gallery / "camB" / "001.png").unlink()  # gone: --missing drops it
    code, out, err = run_cli(f"index remove {grown} --missing".split(), capsys)
    assert (code, out) == (0, f"added 0, removed 1: {grown} now holds 9 entries\n"), err
    code, out, err = run_cli(f"index remove {grown} --source {gallery}/camA/002.png".split(), capsys)
    assert (code, out) == (0, f"added 0, removed 1: {grown} now holds 8 entries\n"), err

    shutil.move(gallery / "camA" / "002.png", tmp_path / "002.png")  # A + B - C, built afresh
    fresh_dir = tmp_path / "fresh"
    _build(model, gallery, fresh_dir, capsys)
    index, fresh = GalleryIndex.load(grown), GalleryIndex.load(fresh_dir)

    assert sorted(index.paths) == sorted(fresh.paths) and len(index) == 8
    by_path = dict(zip(index.paths, index.embeddings))
    assert all(torch.equal(by_path[path], row) for path, row in zip(fresh.paths, fresh.embeddings))
    assert index.manifest == fresh.manifest  # root moved up to the gallery; the skipped image, counts, model
    for options in ({}, {"use_faiss": True}):
        assert _top10(index, model, **options) == _top10(fresh, model, **options)
    assert sorted(path.name for path in grown.iterdir()) == [MARKER, "embeddings.safetensors", "faiss", "manifest.json"]


def test_another_model_and_paths_already_held_change_nothing(models, tmp_path, capsys):
    model, other = models
    gallery = _gallery(tmp_path / "gallery")
    folder = tmp_path / "index"
    _build(model, gallery, folder, capsys)
    state = _state(folder)

    code, out, err = run_cli(f"index add {folder} --images {gallery} --model {other}".split(), capsys)
    assert code == 2 and error_lines(err)[0].startswith("error: the index was built by another model (")
    code, out, err = run_cli(f"index add {folder} --images {gallery / 'camB'} --on_invalid skip".split(), capsys)
    skipped = GalleryIndex.load(folder).skipped[0]["error"]  # camB/004.png, tried again: still not an image
    assert (code, out.splitlines()) == (
        0,
        [
            f"4 already in the index, not added again (first: {gallery.resolve()}/camB/000.png)",
            f"added 0, 1 skipped, removed 0: {folder} unchanged",
            f"skipped: {skipped}",
        ],
    )
    assert _state(folder) == state


def test_a_folder_ivt_hf_did_not_write_whole_is_refused(models, tmp_path, capsys):
    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    folder = tmp_path / "index"
    _build(model, gallery / "camA", folder, capsys)
    _top10(GalleryIndex.load(folder), model, use_faiss=True)  # the cache a search keeps there is ivt_hf's
    (folder / "faiss" / "notes.txt").write_text("mine")  # but not a file of the user's beside it
    code, out, err = run_cli(f"index add {folder} --images {gallery}".split(), capsys)
    assert code == 2 and "refusing to change" in error_lines(err)[0]
    (folder / "faiss" / "notes.txt").unlink()
    (folder / "notes.txt").write_text("mine")
    state = _state(folder)
    code, out, err = run_cli(f"index add {folder} --images {gallery}".split(), capsys)
    assert code == 2 and error_lines(err) == [
        f"error: refusing to change {folder}: it is not a folder that ivt_hf wrote whole (no valid {MARKER}, or "
        "files of someone else's in it); build the index again with `ivt index build`"
    ]
    (folder / "notes.txt").unlink()
    (folder / MARKER).unlink()  # a copy without the marker: not known to be ivt_hf's
    code, out, err = run_cli(f"index remove {folder} --source {gallery}/camA/000.png".split(), capsys)
    assert code == 2 and "refusing to change" in error_lines(err)[0]
    del state["notes.txt"], state[MARKER]
    assert _state(folder) == state


def test_wrong_kinds_and_removing_everything_are_one_line_each(models, tmp_path, capsys, monkeypatch):
    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    folder = tmp_path / "index"
    _build(model, gallery / "camA", folder, capsys)
    state = _state(folder)
    cases = {
        f"index add {folder} --video {tmp_path}/street.avi": f"error: {folder} is an index of images: add --images DIR",
        f"index add {folder}": "error: give --images DIR, or --video FILE... / --frames DIR... (what the index holds)",
        f"index remove {folder}": "error: say what to remove: --missing, or --source FILE_OR_DIR...",
        f"index remove {folder} --source {gallery}": f"error: that would remove all 6 entries of {folder}; nothing "
        "was changed",
        f"index remove {folder} --missing": None,  # nothing is missing: nothing changes
    }
    for command, line in cases.items():
        code, out, err = run_cli(command.split(), capsys)
        if line is None:
            assert (code, out) == (0, f"added 0, removed 0: {folder} unchanged\n")
        else:
            assert (code, error_lines(err)) == (2, [line]), command
    assert _state(folder) == state
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun
    code, out, err = run_cli(f"index add {folder} --images {gallery}".split(), capsys)
    line = "error: ivt index add is one process: start it without torchrun / accelerate"
    assert (code, error_lines(err), _state(folder)) == (2, [line], state)


def test_a_full_disk_during_add_leaves_the_old_index(models, tmp_path, capsys, small_tmpfs):
    from helpers.tmpfs import fill

    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    disk = small_tmpfs("300k")
    folder = disk / "index"
    _build(model, gallery / "camA", folder, capsys)
    state = _state(folder)
    fill(disk, leave=0)
    code, out, err = run_cli(f"index add {folder} --images {gallery} --on_invalid skip".split(), capsys)
    line = f"error: no space left on device: {folder} (free some space or choose another folder)"
    assert (code, error_lines(err)) == (3, [line]), err
    with pytest.raises(OSError) as refused:  # the refusal came from safetensors' own writer, into the staging folder
        encoder, processor = IVTModel.from_pretrained(model), IVTProcessor.from_pretrained(model)
        add_images(encoder, processor, folder, gallery, on_invalid="skip", progress=False)
    assert type(refused.value.__cause__).__name__ == "SafetensorError"
    assert "No space left on device" in str(refused.value.__cause__)
    assert _state(folder) == state
    assert sorted(path.name for path in disk.iterdir()) == [".filler", ".index.lock", "index"]  # no staging left
    assert len(GalleryIndex.load(folder)) == 6


def test_the_faiss_cache_is_extended_and_never_read_stale(models, tmp_path, capsys):
    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    folder = tmp_path / "index"
    _build(model, gallery / "camA", folder, capsys)
    _top10(GalleryIndex.load(folder), model, use_faiss=True)
    cache = faiss_cache_path(folder, FaissSettings().build_key(6))
    old_cache = cache.read_bytes()
    assert run_cli(f"index add {folder} --images {gallery} --on_invalid skip".split(), capsys)[0] == 0

    grown = GalleryIndex.load(folder)
    extended, source = cached_faiss_index(grown.embeddings, FaissSettings(), folder)
    assert (source, extended.ntotal) == ("cache", 10)  # the add extended the flat index: no rebuild
    queries = torch.nn.functional.normalize(
        torch.randn(5, grown.embeddings.shape[1], generator=torch.Generator()), dim=1
    )
    found, expected = (
        extended.search(queries.numpy(), 10),
        build_faiss_index(grown.embeddings).search(queries.numpy(), 10),
    )
    assert all(np.array_equal(a, b) for a, b in zip(found, expected))  # equal to a flat index built afresh, exactly
    cache.write_bytes(old_cache)  # the camA index's cache, put back: its header names other embeddings
    rebuilt, source = cached_faiss_index(grown.embeddings, FaissSettings(), folder)
    assert (source, rebuilt.ntotal) == ("built", 10)

    _top10(grown, model, faiss=FaissSettings("hnsw"))
    assert run_cli(f"index remove {folder} --source {gallery}/camB".split(), capsys)[0] == 0
    assert not (folder / "faiss").exists()  # a removal keeps no cache: the next search builds it
    shrunk = GalleryIndex.load(folder)
    assert [[path for path, _ in hits] for hits in _top10(shrunk, model, use_faiss=True)] == [
        [path for path, _ in hits] for hits in _top10(shrunk, model)
    ]
    assert len(shrunk) == 6 and (folder / "faiss").is_dir()  # built again for the 6 entries left


def test_search_where_source_and_camera(models, tmp_path, capsys):
    model, _ = models
    gallery = _gallery(tmp_path / "gallery")
    folder = tmp_path / "index"
    _build(model, gallery, folder, capsys)

    def hits(flags: str) -> list[str]:
        code, out, err = run_cli(f"search --index {folder} someone -k 20 {flags}".split(), capsys)
        assert code == 0, err
        return sorted(line.split()[-1] for line in out.splitlines()[2:])

    camera_b = ["camB/000.png", "camB/001.png", "camB/002.png", "camB/003.png"]
    assert hits("--where camera=camB") == camera_b
    assert hits(f"--where source={gallery}/camB") == camera_b
    assert hits(f"--where source={gallery}/camA/001.png --where source={gallery}/camB/003.png") == [
        "camA/001.png",
        "camB/003.png",
    ]
    code, out, err = run_cli(
        f"search --index {folder} someone --where camera=camA --where source={gallery}/camB".split(), capsys
    )
    assert (code, error_lines(err)) == (
        2,
        ["error: no entry of the index passes the filters (--where, --after, --before)"],
    )
    flags = f"search --index {folder} someone --where camera=camA --faiss ivf --nlist 7"
    code, out, err = run_cli(flags.split(), capsys)
    line = "error: --nlist 7 is more centroids than the gallery has images that pass the filters (6)"
    assert (code, error_lines(err)) == (2, [line])
    assert hits("--where camera=camA --faiss ivf --nlist 6") == [f"camA/{number:03d}.png" for number in range(6)]
    with pytest.raises(SystemExit) as stopped:
        run_cli(f"search --index {folder} someone --where place=x".split(), capsys)
    message = "ivt search: error: argument --where: must be source=FILE_OR_DIR or camera=NAME, got 'place=x'"
    assert (stopped.value.code, error_lines(capsys.readouterr().err)) == (2, [message])


def test_select_entries_by_time_and_camera_of_footage():
    def record(source: str, time_s):
        return {"source": source, "frame": 0, "time_s": time_s, "box": [0, 0, 1, 1], "track": 0, "score": 1.0}

    footage = [
        record("/videos/street.mp4", 1.0),
        record("/videos/street.mp4", 12.5),
        record("/videos/door.avi", 30.0),
        record("/stills/gate/0001.jpg", None),
    ]
    paths = ["street-1/crops/a.jpg", "street-1/crops/b.jpg", "door-2/crops/c.jpg", "gate-3/crops/d.jpg"]
    index = GalleryIndex(torch.eye(4), paths, {"root": "/index/gallery"}, footage=footage)
    assert select_entries(index, after=1.0, before=12.5) == [0, 1]
    assert select_entries(index, after=12.6) == [2]  # an entry without a time is never in a time range
    assert select_entries(index, cameras=["street.mp4"]) == [0, 1]
    assert select_entries(index, cameras=["gate", "door-2"]) == [2, 3]
    assert select_entries(index, sources=["/videos"], before=20) == [0, 1]


def test_footage_add_and_remove_by_source_equal_a_fresh_build(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from helpers.commands import save_tiny_model_folder
    from helpers.footage import ColourDetector, synthetic_frame, write_synthetic_video

    from ivt_hf.footage import FootageSettings
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.search.footage_index import build_footage_index
    from ivt_hf.search.growing import add_footage, remove_entries

    model, processor = load_model_and_processor(str(save_tiny_model_folder(tmp_path / "model")))
    video = write_synthetic_video(tmp_path / "street.avi")
    for camera in ("cam1", "cam2"):
        (tmp_path / "frames" / camera).mkdir(parents=True)
        for number in range(12):
            Image.fromarray(synthetic_frame(number)).save(tmp_path / "frames" / camera / f"{number:05d}.png")
    frames = tmp_path / "linked"  # footage records keep a source as given: through this link
    frames.symlink_to(tmp_path / "frames")
    settings = FootageSettings(frames_fps=10.0, sample_fps=5.0)
    common = {"detector": ColourDetector(), "batch_size": 1, "progress": False}

    def build(output: Path, frame_folders: list[Path]) -> GalleryIndex:
        build_footage_index(
            model, processor, output, videos=[video], frame_folders=frame_folders, settings=settings, **common
        )
        return GalleryIndex.load(output)

    grown = tmp_path / "grown"
    build(grown, [])
    report = add_footage(model, processor, grown, videos=[video], frame_folders=[frames], **common)
    assert (report.added, report.already) == (12, [str(video.absolute())])
    assert remove_entries(grown, sources=[frames / "cam2"]).removed == 6
    fresh_dir = tmp_path / "fresh"
    index, fresh = GalleryIndex.load(grown), build(fresh_dir, [frames / "cam1"])

    assert sorted(index.paths) == sorted(fresh.paths) and len(index) == 12
    rows = {path: (row, record) for path, row, record in zip(index.paths, index.embeddings, index.footage)}
    for path, row, record in zip(fresh.paths, fresh.embeddings, fresh.footage):
        assert torch.equal(rows[path][0], row) and rows[path][1] == record

    def comparable(folder: Path) -> dict:
        manifest = json.loads((folder / "manifest.json").read_text())
        sources = [{**item, "seconds": None} for item in manifest["footage_sources"]]  # how long each took differs
        return {**manifest, "paths": None, "footage": None, "footage_sources": sources}

    assert comparable(grown) == comparable(fresh_dir) and comparable(grown)["root"] == "gallery"  # still movable
    assert _state(grown / "gallery") == _state(tmp_path / "fresh" / "gallery")  # cam2's crops and frames left behind
    folders = [
        sorted(str(path.relative_to(top)) for path in top.rglob("*") if path.is_dir()) for top in (grown, fresh_dir)
    ]
    assert folders[0] == folders[1]  # and no empty folder of cam2's
    for options in ({}, {"use_faiss": True}):
        assert _top10(index, tmp_path / "model", **options) == _top10(fresh, tmp_path / "model", **options)
