"""A gallery's vectors kept in Milvus (issue 28, `--store milvus:URI`), tested on Milvus Lite in tmp_path: search
equals the exact search, the filters give the in-memory filtered search's hits, add then remove leave the store equal
to a fresh build, filter values cannot break out of their string literal, a manifest cannot point the store outside
its folder or at a server, and a missing pymilvus is one line."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.commands import error_lines, run_cli, save_tiny_model_folder, write_camera_gallery
from PIL import Image

from ivt_hf import IVTModel, IVTProcessor
from ivt_hf.evaluation.encoding import encode_texts
from ivt_hf.search.growing import select_entries
from ivt_hf.search.index import GalleryIndex, index_manifest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from ivt_hf.search.milvus_store import (  # noqa: E402  (after the skips: the milvus extra)
    MilvusStore,
    MilvusStoreError,
    filter_expression,
    load_searched_index,
    load_store_index,
    milvus_literal,
    parse_store,
    write_store,
)

QUERIES = ["a man in a red coat", "a woman with a black bag", "someone walking"]
FIELDS = ["path", "source", "camera", "source_name", "time", "frame", "track", "vector"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model_folder(tmp_path_factory.mktemp("milvus_model") / "model", seed=0, num_hidden_layers=2)


def _gallery(folder: Path) -> Path:
    """camA: 6 images, camB: 5, random pixels."""
    write_camera_gallery(folder)
    return folder


def _build(model: Path, images: Path, output: Path, capsys, store: str = "--store milvus:") -> None:
    """`ivt index build`, one image per batch (bit-equal embeddings across builds, as test_growing_index says)."""
    flags = f"index build --model {model} --images {images} --output_dir {output} --batch_size 1 {store}"
    code, out, err = run_cli(flags.split(), capsys)
    assert code == 0, err


def _search_lines(folder: Path, capsys, flags: str = "") -> list[str]:
    code, out, err = run_cli(f"search --index {folder} someone -k 20 {flags}".split(), capsys)
    assert code == 0, err
    return out.splitlines()


def _stored_top10(folder: Path, queries, **filters) -> list[list[tuple[str, float]]]:
    index, spec = load_store_index(folder, None)
    with MilvusStore(spec, folder) as store:
        store.check(index)
        results = store.search(index, queries, 10, filter_expression(**filters))
    return [[(hit.path, hit.score) for hit in hits] for hits in results]


def _rows(folder: Path) -> dict[str, tuple]:
    """Every entry of the folder's store by path: its fields (the vector as bytes of float32)."""
    index, spec = load_store_index(folder, None)
    with MilvusStore(spec, folder) as store:
        store.check(index)
        found = store.client.query(spec.collection, filter="id >= 0", output_fields=FIELDS)
    return {
        row["path"]: tuple(
            np.asarray(row[name], np.float32).tobytes() if name == "vector" else row[name] for name in FIELDS
        )
        for row in found
    }


def test_lite_search_equals_exact_search_without_reading_the_embeddings(model_dir, tmp_path, capsys):
    gallery, folder, plain = _gallery(tmp_path / "gallery"), tmp_path / "index", tmp_path / "plain"
    _build(model_dir, gallery, folder, capsys)
    _build(model_dir, gallery, plain, capsys, store="")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["store"] == {"kind": "milvus", "uri": "milvus.db", "collection": "ivt_index"}
    model, processor = IVTModel.from_pretrained(model_dir).eval(), IVTProcessor.from_pretrained(model_dir)
    exact = GalleryIndex.load(folder).search(QUERIES, model, processor, k=10)
    stored = _stored_top10(folder, encode_texts(model, processor, QUERIES, progress=False))
    for exact_hits, stored_hits in zip(exact, stored, strict=True):
        assert [hit.path for hit in exact_hits] == [path for path, _ in stored_hits]
        assert np.allclose([hit.score for hit in exact_hits], [score for _, score in stored_hits], atol=1e-5, rtol=0)
    # the CLI prints what the plain index prints; and reads the manifest only: without embeddings it still searches
    assert _search_lines(folder, capsys) == _search_lines(plain, capsys)
    os.remove(folder / "embeddings.safetensors")
    assert _search_lines(folder, capsys) == _search_lines(plain, capsys)
    other = save_tiny_model_folder(tmp_path / "other", seed=1, num_hidden_layers=2)
    code, out, err = run_cli(f"search --index {folder} someone --model {other}".split(), capsys)
    assert code == 2 and error_lines(err)[0].startswith("error: the index was built by another model")


def test_search_reads_each_manifest_once_with_or_without_a_store(model_dir, tmp_path, capsys, monkeypatch):
    """`ivt search` looks into the manifest for a store, then loads the index from that same read."""
    import ivt_hf.search.index as index_module
    import ivt_hf.search.milvus_store as store_module

    plain, stored = tmp_path / "plain", tmp_path / "stored"
    _build(model_dir, _gallery(tmp_path / "gallery"), plain, capsys, store="")
    _build(model_dir, tmp_path / "gallery", stored, capsys)
    reads = []

    def counted(read):
        def read_json_object(path, *args, **kwargs):
            reads.append(Path(path).name)
            return read(path, *args, **kwargs)

        return read_json_object

    for module in (index_module, store_module):
        monkeypatch.setattr(module, "read_json_object", counted(module.read_json_object))
    index, store = load_searched_index(plain, None)
    assert (len(index), store, reads) == (11, None, ["manifest.json"])
    assert index.embeddings.shape == (11, index.manifest["hidden_size"])
    reads.clear()
    index, store = load_searched_index(stored, None)
    assert (len(index), store is not None, reads) == (11, True, ["manifest.json"])


def test_where_filters_give_the_in_memory_hits(model_dir, tmp_path, capsys):
    gallery, folder, plain = _gallery(tmp_path / "gallery"), tmp_path / "index", tmp_path / "plain"
    _build(model_dir, gallery, folder, capsys)
    _build(model_dir, gallery, plain, capsys, store="")
    for flags in (
        "--where camera=camB",
        f"--where source={gallery}/camB",
        f"--where source={gallery}/camA/001.png --where source={gallery}/camB/003.png",
        f"--where camera=camA --where source={gallery}",
    ):
        assert _search_lines(folder, capsys, flags) == _search_lines(plain, capsys, flags)
    assert len(_search_lines(folder, capsys, "--where camera=camB")) == 2 + 5
    code, out, err = run_cli(
        f"search --index {folder} x --where camera=camA --where source={gallery}/camB".split(), capsys
    )
    line = "error: no entry of the index passes the filters (--where, --after, --before)"
    assert (code, error_lines(err)) == (2, [line])


def _footage_index(folder: Path) -> GalleryIndex:
    """A crafted index of footage (8-dim random vectors), its vectors in a Milvus Lite file: sources with a quote,
    a backslash, % and _ in their names, times with and without a value."""

    def record(source: str, time_s, frame: int):
        frame_file = f"frames/{frame}.jpg"
        return {"source": source, "frame": frame, "time_s": time_s, "box": [0, 0, 1, 1], "track": frame % 3,
                "score": 1.0, "frame_file": frame_file, "video_file": None}  # fmt: skip

    odd = '/videos/a"b_%\\c'
    sources = ["/videos/street.mp4", "/videos/door.avi", f"{odd}/clip.mp4", "/stills/gate/0001.jpg", "/videos/a.mp4"]
    footage = [record(sources[number % 5], None if number % 7 == 3 else number * 2.5, number) for number in range(30)]
    paths = [f"{Path(item['source']).stem}-{number % 5}/crops/{number}.jpg" for number, item in enumerate(footage)]
    embeddings = torch.nn.functional.normalize(torch.randn(30, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    manifest = index_manifest(root=str(folder / "gallery"), model_name=None, fingerprint="f" * 16,
                              embeddings=embeddings, skipped=[])  # fmt: skip
    index = GalleryIndex(embeddings, paths, manifest, footage=footage)
    folder.mkdir()
    write_store(index, folder, parse_store("milvus:"), index_dir=folder)
    index.save(folder)
    return index


def test_footage_filters_give_the_in_memory_hits(tmp_path):
    folder = tmp_path / "footage"
    index = _footage_index(folder)
    queries = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    odd = '/videos/a"b_%\\c'
    for filters in (
        {"after": 10.0, "before": 40.0},
        {"after": 50.0},
        {"before": 7.5},
        {"cameras": ["street.mp4", "gate"]},
        {"cameras": ["door-1"], "after": 0.0},
        {"sources": ["/videos"], "before": 60.0},
        {"sources": [odd]},
        {"sources": [f"{odd}/clip.mp4", "/stills"]},
        {"sources": ['/videos/a"b']},  # a prefix of a folder's name is not that folder
    ):
        rows = select_entries(index, **filters)
        got = _stored_top10(folder, queries, **filters)
        if not rows:
            assert got == [[]] * 4, filters
            continue
        part = GalleryIndex(index.embeddings[rows], [index.paths[row] for row in rows], index.manifest)
        expected = [[(hit.path, hit.score) for hit in hits] for hits in part.search_embeddings(queries, k=10)]
        assert [[path for path, _ in hits] for hits in got] == [[path for path, _ in hits] for hits in expected]
        assert np.allclose([s for hits in got for _, s in hits], [s for hits in expected for _, s in hits], atol=1e-5)
    assert select_entries(index, sources=[odd]) == [2, 7, 12, 17, 22, 27]


def test_filter_values_cannot_break_out_of_their_literal(tmp_path):
    assert milvus_literal('a"b\\c\nd\te') == '"a\\"b\\\\c\\nd\\te"'
    assert filter_expression(cameras=['x" or camera != "']) == (
        '(camera == "x\\" or camera != \\"" or source_name == "x\\" or camera != \\"")'
    )
    assert filter_expression(after=1e-05, before=20) == "(time >= 0.00001) and (time <= 20.0)"
    assert filter_expression() == ""
    with pytest.raises(MilvusStoreError, match=r"control character .* 'a\\x01b'"):
        milvus_literal("a\x01b")
    folder = tmp_path / "footage"
    _footage_index(folder)
    queries = torch.eye(8)[:1]
    for cameras in (['x" or camera != "'], ["x\\", '") or id >= 0 or ("']):
        assert _stored_top10(folder, queries, cameras=cameras) == [[]]  # not every entry: nothing matches


def test_add_then_remove_keep_the_store_equal_to_a_fresh_build(model_dir, tmp_path, capsys):
    gallery, grown, fresh = _gallery(tmp_path / "gallery"), tmp_path / "grown", tmp_path / "fresh"
    _build(model_dir, gallery / "camA", grown, capsys)
    code, out, err = run_cli(f"index add {grown} --images {gallery} --batch_size 1".split(), capsys)
    assert code == 0, err
    assert _search_lines(grown, capsys)  # milvus-lite's own files of a search leave the folder ivt_hf's
    code, out, err = run_cli(f"index remove {grown} --source {gallery}/camA/002.png".split(), capsys)
    assert (code, out) == (0, f"added 0, removed 1: {grown} now holds 10 entries\n"), err

    shutil.move(gallery / "camA" / "002.png", tmp_path / "002.png")
    _build(model_dir, gallery, fresh, capsys)
    grown_rows, fresh_rows = _rows(grown), _rows(fresh)
    assert len(grown_rows) == 10 and grown_rows == fresh_rows
    queries = torch.nn.functional.normalize(torch.randn(3, 32, generator=torch.Generator().manual_seed(2)), dim=1)
    grown_hits, fresh_hits = _stored_top10(grown, queries), _stored_top10(fresh, queries)
    assert [[path for path, _ in hits] for hits in grown_hits] == [[path for path, _ in hits] for hits in fresh_hits]
    scores = [[[score for _, score in hits] for hits in found] for found in (grown_hits, fresh_hits)]
    assert np.allclose(*scores, atol=1e-6, rtol=0)  # equal rows; the sums' order follows their places
    assert _search_lines(grown, capsys, "--where camera=camA") == _search_lines(fresh, capsys, "--where camera=camA")


def test_a_manifest_cannot_lead_the_store_elsewhere(model_dir, tmp_path, capsys):
    gallery, folder = _gallery(tmp_path / "gallery"), tmp_path / "index"
    _build(model_dir, gallery, folder, capsys)
    outside = tmp_path / "elsewhere.db"
    shutil.copytree(folder / "milvus.db", outside)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())

    def refusal(uri: str, flags: str = "") -> list[str]:
        manifest_path.write_text(json.dumps({**manifest, "store": {**manifest["store"], "uri": uri}}))
        code, out, err = run_cli(f"search --index {folder} someone {flags}".split(), capsys)
        assert code == 2
        return error_lines(err)

    for uri in ("../elsewhere.db", str(outside), "sub/../../elsewhere.db"):
        assert refusal(uri) == [
            f"error: refusing {manifest_path}: its Milvus Lite file {uri!r} is not a NAME.db in the index folder "
            "(an index may only reach its own folder)"
        ]
    indexes = folder / "milvus.db" / "collections" / "ivt_index"
    (indexes / "planted").symlink_to(tmp_path / "gallery" / "camA" / "000.png")  # milvus-lite would read or write it
    assert refusal("milvus.db") == [
        f"error: refusing {manifest_path}: its Milvus Lite file holds {indexes / 'planted'}, which is not a plain file "
        "or folder"
    ]
    (indexes / "planted").unlink()
    (folder / "link.db").symlink_to(outside)
    assert refusal("link.db") == [
        f"error: refusing {manifest_path}: its Milvus Lite file 'link.db' is not a NAME.db in the index folder "
        "(an index may only reach its own folder)"
    ]
    assert refusal("http://attacker.example:19530") == [
        f"error: {manifest_path} keeps its vectors on the Milvus server http://attacker.example:19530: an index "
        "folder does not choose what this machine connects to; pass --store milvus:http://attacker.example:19530 "
        "to search there"
    ]
    assert refusal("milvus.db", "--store milvus:other.db") == [
        f"error: --store milvus:other.db: {folder} keeps its vectors in milvus.db (Milvus Lite)"
    ]
    code, out, err = run_cli(f"index build --model {model_dir} --images {gallery} --output_dir {tmp_path}/x "
                             f"--store milvus:{tmp_path}/elsewhere.db".split(), capsys)  # fmt: skip
    assert (code, error_lines(err)) == (2, [
        f"error: --store milvus:{tmp_path}/elsewhere.db: a Milvus Lite file is a NAME.db in the index folder "
        "(letters, digits, ., _, -)"
    ])  # fmt: skip
    assert not (tmp_path / "x").exists()


def test_a_missing_pymilvus_is_one_line(model_dir, tmp_path, capsys, monkeypatch):
    gallery = _gallery(tmp_path / "gallery")
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # `import pymilvus` raises ImportError
    flags = f"index build --model {model_dir} --images {gallery} --output_dir {tmp_path}/index --store milvus:"
    code, out, err = run_cli(flags.split(), capsys)
    assert (code, error_lines(err)) == (2, ["error: a Milvus store needs pymilvus: pip install 'ivt_hf[milvus]'"])
    assert not (tmp_path / "index").exists()


def test_a_server_store_is_used_only_when_named(model_dir, tmp_path, capsys):
    """The server path, on milvus-lite's own gRPC server (what `milvus:NAME.db` runs in-process) at http://127.0.0.1:
    PORT: the manifest records the URI, and neither search nor remove connects to it unless --store names it."""
    from milvus_lite.server_manager import server_manager_instance

    uri = server_manager_instance.start_and_get_uri(str(tmp_path / "server.db"))
    try:
        gallery, folder, plain = _gallery(tmp_path / "gallery"), tmp_path / "index", tmp_path / "plain"
        _build(model_dir, gallery, folder, capsys, store=f"--store milvus:{uri}?collection=people")
        _build(model_dir, gallery, plain, capsys, store="")
        manifest_path = folder / "manifest.json"
        assert json.loads(manifest_path.read_text())["store"] == {"kind": "milvus", "uri": uri, "collection": "people"}
        assert not (folder / "milvus.db").exists()
        named = f"--store milvus:{uri}"
        refusal = (
            f"error: {manifest_path} keeps its vectors on the Milvus server {uri}: an index folder does not choose "
            f"what this machine connects to; pass --store milvus:{uri} to search there"
        )
        for command in (f"search --index {folder} someone", f"index remove {folder} --source {gallery}/camB"):
            code, out, err = run_cli(command.split(), capsys)
            assert (code, error_lines(err)) == (2, [refusal])
        assert _search_lines(folder, capsys, named) == _search_lines(plain, capsys)

        other = tmp_path / "other"
        flags = f"index build --model {model_dir} --images {gallery} --output_dir {other} {named}?collection=people"
        code, out, err = run_cli(flags.split(), capsys)
        assert (code, error_lines(err)) == (2, [
            f"error: the Milvus collection milvus:{uri}?collection=people exists already; pass --overwrite to "
            "replace it (only a collection ivt_hf made is replaced), or name another with ?collection=NAME"
        ])  # fmt: skip
        assert not other.exists()  # refused before anything is encoded or written

        for index in (folder, plain):
            flags = f"index remove {index} --source {gallery}/camB/001.png {gallery}/camA/000.png"
            code, out, err = run_cli((flags + (f" {named}" if index == folder else "")).split(), capsys)
            assert code == 0, err
        assert _search_lines(folder, capsys, named) == _search_lines(plain, capsys)
        assert len(_search_lines(folder, capsys, named)) == 2 + 9
    finally:
        server_manager_instance.release_server(str(tmp_path / "server.db"))


def test_footage_build_add_remove_and_time_filters_in_the_store(tmp_path, capsys):
    """A real footage index (a synthetic video, frame folders through a link) built with a store, grown by add and
    shrunk by remove, holds in Milvus what a fresh build holds, and --after/--before/--where in Milvus give the
    in-memory search's hits."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from helpers.footage import ColourDetector, synthetic_frame, write_synthetic_video

    from ivt_hf.footage import FootageSettings
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.search.footage_index import build_footage_index
    from ivt_hf.search.growing import add_footage, remove_entries

    model_dir = save_tiny_model_folder(tmp_path / "model")
    model, processor = load_model_and_processor(str(model_dir))
    video = write_synthetic_video(tmp_path / "street.avi")
    for camera in ("cam1", "cam2"):
        (tmp_path / "frames" / camera).mkdir(parents=True)
        for number in range(12):
            Image.fromarray(synthetic_frame(number)).save(tmp_path / "frames" / camera / f"{number:05d}.png")
    frames = tmp_path / "linked"
    frames.symlink_to(tmp_path / "frames")
    settings = FootageSettings(frames_fps=10.0, sample_fps=5.0)
    common = {"detector": ColourDetector(), "batch_size": 1, "progress": False}
    store = parse_store("milvus:")

    grown, fresh = tmp_path / "grown", tmp_path / "fresh"
    build_footage_index(model, processor, grown, videos=[video], settings=settings, store=store, **common)
    add_footage(model, processor, grown, videos=[video], frame_folders=[frames], **common)
    assert remove_entries(grown, sources=[frames / "cam2"]).removed == 6
    build_footage_index(
        model,
        processor,
        fresh,
        videos=[video],
        frame_folders=[frames / "cam1"],
        settings=settings,
        store=store,
        **common,
    )
    assert _rows(grown) == _rows(fresh) and len(_rows(grown)) == len(GalleryIndex.load(fresh)) == 12

    plain = tmp_path / "plain"
    build_footage_index(
        model, processor, plain, videos=[video], frame_folders=[frames / "cam1"], settings=settings, **common
    )
    for flags in ("--after 0.2 --before 0.6", "--before 0.3", "--where camera=cam1", f"--where source={video}"):
        hits = _search_lines(grown, capsys, flags)
        assert hits == _search_lines(plain, capsys, flags) and len(hits) > 2, flags
