"""FAISS search: exact (flat) equals the built-in search, approximate indexes (IVF, HNSW) reach high recall on a
clustered gallery, their settings are checked, and `ivt search --faiss ivf` takes them. A saved index keeps its
trained FAISS index in `faiss/` and the next search (another `load`, another process) reads it instead of training
again; a changed gallery or changed build settings build anew, search-time knobs do not; a corrupt, foreign or
half-written cache file is never trusted (and never unpickled)."""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from pathlib import Path

import pytest
import torch

import ivt_hf.search.faiss_cache as faiss_cache_module
import ivt_hf.search.index as index_module
from ivt_hf.search import FaissSettings, GalleryIndex, build_faiss_index

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md


def clustered(count: int, dim: int = 64, clusters: int = 50, seed: int = 0) -> torch.Tensor:
    """Normalised vectors around random centres: the shape of image embeddings of many people."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=generator)
    members = centres[torch.randint(clusters, (count,), generator=generator)]
    return torch.nn.functional.normalize(members + 0.6 * torch.randn(count, dim, generator=generator), dim=1)


def _recall_at_10(index: GalleryIndex, queries: torch.Tensor, settings: FaissSettings) -> float:
    exact = [{hit.path for hit in row} for row in index.search_embeddings(queries, k=10)]
    approx = [{hit.path for hit in row} for row in index.search_embeddings(queries, k=10, faiss=settings)]
    return sum(len(a & e) for a, e in zip(approx, exact)) / (10 * len(exact))


def test_flat_is_exact_and_approximate_indexes_find_the_neighbours():
    gallery = clustered(6000)
    index = GalleryIndex(gallery, [f"{number}.jpg" for number in range(len(gallery))])
    queries = torch.nn.functional.normalize(gallery[:200] + 0.3 * torch.randn(200, 64), dim=1)
    exact = index.search_embeddings(queries, k=10)
    flat = index.search_embeddings(queries, k=10, use_faiss=True)
    assert [[hit.path for hit in row] for row in flat] == [[hit.path for hit in row] for row in exact]
    assert flat[0][0].score == pytest.approx(exact[0][0].score, abs=1e-5)
    assert _recall_at_10(index, queries, FaissSettings("ivf", nprobe=16)) >= 0.95
    assert _recall_at_10(index, queries, FaissSettings("hnsw", hnsw_m=16, ef_search=128)) >= 0.95
    assert _recall_at_10(index, queries, FaissSettings("ivf", nlist=64, nprobe=1)) < 0.9  # the knob does something


def test_ivf_defaults_and_bad_settings():
    gallery = clustered(4000)
    index = build_faiss_index(gallery, FaissSettings("ivf"))
    assert index.nlist == min(4000 // 39, int(4 * 4000**0.5)) and index.nprobe == 32 and index.ntotal == 4000
    small = build_faiss_index(gallery[:30], FaissSettings("ivf"))  # fewer vectors than one centroid wants
    assert small.nlist == 1 and small.ntotal == 30
    for bad, message in [
        ({"kind": "annoy"}, "flat, ivf, hnsw or ivfpq"),
        ({"kind": "ivf", "nprobe": 0}, "nprobe"),
        ({"kind": "ivf", "nlist": 0}, "nlist"),
    ]:
        with pytest.raises(ValueError, match=message):
            FaissSettings(**bad)


IVF = FaissSettings("ivf", nlist=16, nprobe=4)


@pytest.fixture
def builds(monkeypatch) -> list[FaissSettings]:
    """Every FAISS index trained from here on (the settings of each call of `build_faiss_index`)."""
    calls: list[FaissSettings] = []
    real = faiss_cache_module.build_faiss_index

    def counting(embeddings, settings=FaissSettings(), seed=0):
        calls.append(settings)
        return real(embeddings, settings, seed)

    monkeypatch.setattr(faiss_cache_module, "build_faiss_index", counting)
    return calls


def _save(embeddings: torch.Tensor, paths: list[str], folder: Path) -> None:
    GalleryIndex(embeddings, paths, {"format_version": index_module.INDEX_FORMAT_VERSION}).save(folder)


@pytest.fixture
def saved(tmp_path) -> tuple[Path, torch.Tensor]:
    """An index folder of 2,000 clustered vectors, and 50 queries."""
    gallery = clustered(2000, seed=1)
    _save(gallery, [f"{number}.jpg" for number in range(len(gallery))], tmp_path / "index")
    return tmp_path / "index", torch.nn.functional.normalize(gallery[:50] + 0.3 * torch.randn(50, 64), dim=1)


def _hits(folder: Path, queries: torch.Tensor, settings: FaissSettings) -> list[list[tuple[str, float]]]:
    """Top-10 (path, score) per query, from a freshly loaded index (as a new `ivt search` process would)."""
    rows = GalleryIndex.load(folder).search_embeddings(queries, k=10, faiss=settings)
    return [[(hit.path, hit.score) for hit in row] for row in rows]


def _cache_files(folder: Path) -> list[str]:
    return sorted(path.name for path in (folder / "faiss").iterdir())


def test_the_next_search_reads_the_saved_faiss_index_instead_of_training_again(saved, builds):
    folder, queries = saved
    first = _hits(folder, queries, IVF)
    assert len(builds) == 1 and len(_cache_files(folder)) == 1 and _cache_files(folder)[0].startswith("ivf-")
    assert _hits(folder, queries, IVF) == first  # a new load: read from faiss/, same hits and scores
    assert len(builds) == 1

    reloaded = GalleryIndex.load(folder)  # search-time knobs: set on the cached index, never a rebuild
    assert reloaded.faiss_index(FaissSettings("ivf", nlist=16, nprobe=16)).nprobe == 16
    assert reloaded.faiss_index(IVF).nprobe == 4 and len(builds) == 1
    every_list = _hits(folder, queries, FaissSettings("ivf", nlist=16, nprobe=16))
    exact = GalleryIndex.load(folder).search_embeddings(queries, k=10)
    assert [[path for path, _ in row] for row in every_list] == [[hit.path for hit in row] for row in exact]
    assert len(builds) == 1

    _hits(folder, queries, FaissSettings("ivf", nlist=32, nprobe=4))  # build settings: a new index, its own file
    _hits(folder, queries, FaissSettings("ivf", nlist=16, nprobe=4, train_sample=400))
    assert [settings.nlist for settings in builds] == [16, 32, 16] and len(_cache_files(folder)) == 3
    _hits(folder, queries, FaissSettings("ivf", nlist=32, nprobe=8))
    assert len(builds) == 3

    hnsw = _hits(folder, queries, FaissSettings("hnsw", hnsw_m=16, ef_search=32))
    assert _hits(folder, queries, FaissSettings("hnsw", hnsw_m=16, ef_search=32)) == hnsw
    assert GalleryIndex.load(folder).faiss_index(FaissSettings("hnsw", hnsw_m=16, ef_search=64)).hnsw.efSearch == 64
    _hits(folder, queries, FaissSettings("hnsw", hnsw_m=8))
    assert [settings.kind for settings in builds[3:]] == ["hnsw", "hnsw"] and len(_cache_files(folder)) == 5


def test_a_changed_gallery_builds_a_new_faiss_index(saved, builds):
    folder, queries = saved
    _hits(folder, queries, FaissSettings("flat"))
    other = clustered(2000, seed=2)
    _save(other, [f"other_{number}.jpg" for number in range(len(other))], folder)  # the same folder, new data
    found = _hits(folder, queries, FaissSettings("flat"))
    assert len(builds) == 2 and len(_cache_files(folder)) == 1  # the stale file replaced, not kept beside
    exact = GalleryIndex.load(folder).search_embeddings(queries, k=10)
    assert [[path for path, _ in row] for row in found] == [[hit.path for hit in row] for row in exact]
    assert found[0][0][0].startswith("other_")
    assert _hits(folder, queries, FaissSettings("flat")) == found and len(builds) == 2


def _rewrite_payload(path: Path, payload: bytes) -> None:
    """A cache file with a valid header (size and sha256 of `payload`) around bytes that are not a FAISS index."""
    raw = path.read_bytes()
    magic, size = faiss_cache_module.FAISS_CACHE_MAGIC, faiss_cache_module.FAISS_CACHE_HEADER_BYTES
    header = json.loads(raw[len(magic) : size].decode())
    header.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
    path.write_bytes((magic + json.dumps(header).encode()).ljust(size, b" ") + payload)


class _Trap:
    """Unpickling this touches a marker file: if the marker exists, someone unpickled the cache."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "pickle", "valid header, not an index", "empty"])
def test_a_corrupt_or_foreign_cache_file_is_rebuilt_with_a_warning_and_never_unpickled(saved, builds, damage):
    folder, queries = saved
    first = _hits(folder, queries, IVF)
    (path,) = (folder / "faiss").iterdir()
    marker = folder.parent / "unpickled"
    raw = path.read_bytes()
    if damage == "flipped byte":
        path.write_bytes(raw[:-100] + bytes([raw[-100] ^ 0xFF]) + raw[-99:])
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "pickle":
        path.write_bytes(pickle.dumps(_Trap(marker)))
    elif damage == "valid header, not an index":
        _rewrite_payload(path, pickle.dumps(_Trap(marker)) * 50)
    else:
        path.write_bytes(b"")
    with pytest.warns(UserWarning, match=f"ignoring the cached FAISS index {path}"):
        assert _hits(folder, queries, IVF) == first
    assert len(builds) == 2 and not marker.exists()
    assert _hits(folder, queries, IVF) == first and len(builds) == 2  # rebuilt and saved again: read next time


def test_concurrent_searches_leave_one_whole_cache_file(saved, builds):
    folder, queries = saved
    results, errors = [None] * 4, []

    def search(slot: int) -> None:
        try:
            results[slot] = _hits(folder, queries, FaissSettings("hnsw", hnsw_m=8))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=search, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(builds) >= 1
    assert len(_cache_files(folder)) == 1  # each writer renamed its own temporary file into place: none left over
    count = len(builds)  # how many raced to build before the first rename varies; afterwards all read the file
    cached = _hits(folder, queries, FaissSettings("hnsw", hnsw_m=8))
    assert len(builds) == count and cached in results  # the file is one writer's whole index


def test_a_write_that_dies_leaves_nothing_a_reader_would_take(saved, builds, monkeypatch):
    import faiss

    folder, queries = saved
    real_write = faiss.write_index

    def dying(index, writer):
        real_write(faiss.IndexFlatIP(4), writer)  # some bytes reach the file, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", dying)
    with pytest.warns(UserWarning, match="cannot save the FAISS index"):
        first = _hits(folder, queries, IVF)  # the search itself still answers
    assert _cache_files(folder) == []  # no partial file, no temporary file
    monkeypatch.setattr(faiss, "write_index", real_write)
    assert _hits(folder, queries, IVF) == first and len(builds) == 2 and len(_cache_files(folder)) == 1
    assert _hits(folder, queries, IVF) == first and len(builds) == 2


def test_ivt_search_twice_trains_the_faiss_index_once(tmp_path, builds, capsys):
    import numpy as np
    from PIL import Image

    from ivt_hf import IVTConfig, IVTModel, IVTProcessor
    from ivt_hf.cli import main
    from ivt_hf.hub import save_model_folder
    from ivt_hf.search import build_index

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    for number in range(80):
        Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{number}.png")
    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", num_hidden_layers=1, patch_stride=16)
    save_model_folder(IVTModel(config), IVTProcessor.from_config(config), tmp_path / "model")
    model, processor = IVTModel.from_pretrained(tmp_path / "model"), IVTProcessor.from_pretrained(tmp_path / "model")
    build_index(model, processor, tmp_path / "images", tmp_path / "index", progress=False)
    capsys.readouterr()

    command = [
        *f"search --index {tmp_path / 'index'} --model {tmp_path / 'model'}".split(),
        "a man",
        *"-k 5 --faiss ivf --nlist 2".split(),
    ]
    printed = []
    for nprobe in ("1", "1", "2"):
        assert main([*command, "--nprobe", nprobe]) == 0
        printed.append(capsys.readouterr().out)
    assert len(builds) == 1 and printed[0] == printed[1]  # the second command read faiss/, same hits
    assert main([*command[:-1], "3", "--nprobe", "3"]) == 0 and len(builds) == 2  # --nlist: a new index
    capsys.readouterr()
    assert main([*command[:-3], "ivfpq", "--nlist", "2", "--pq_bytes", "8"]) == 0 and len(builds) == 3
    assert sum(name.startswith("ivfpq-") for name in _cache_files(tmp_path / "index")) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "a man" and len(printed) == 7 and printed[2].endswith("  2.png")  # 5 hits, exact's top hit


# ivfpq: a compressed index built out of core from the embeddings file, which a loaded index maps instead of reading


def test_ivfpq_built_from_the_file_in_chunks_is_the_one_built_in_memory_and_finds_the_neighbours(tmp_path):
    import tracemalloc

    import faiss

    from ivt_hf.search.embeddings_file import EmbeddingsFile

    ivfpq = FaissSettings("ivfpq", nlist=64, nprobe=16, pq_bytes=32, train_sample=5000)
    gallery = clustered(20_000, clusters=200, seed=3)
    _save(gallery, [f"{number}.jpg" for number in range(len(gallery))], tmp_path / "index")
    stored = EmbeddingsFile.open(tmp_path / "index" / "embeddings.safetensors", rows=20_000, dim=64)
    tracemalloc.start()  # numpy's arrays are traced: what the build holds at once
    try:
        from_file = build_faiss_index(stored, ivfpq, chunk_rows=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * 20_000 * 64 * 4  # the 5,000-row sample and a chunk, never the 5.1 MB file
    in_memory = build_faiss_index(gallery, ivfpq)  # one chunk of 20,000
    assert isinstance(from_file, faiss.IndexIVFPQ) and from_file.code_size == 32 and from_file.ntotal == 20_000
    assert bytes(faiss.serialize_index(from_file)) == bytes(faiss.serialize_index(in_memory))  # the same codes

    queries = torch.nn.functional.normalize(gallery[:300] + 0.3 * torch.randn(300, 64), dim=1)
    exact = (queries @ gallery.t()).topk(10, dim=1).indices.tolist()
    found = from_file.search(queries.numpy(), 10)[1].tolist()
    recall = sum(len(set(a) & set(e)) for a, e in zip(found, exact)) / (10 * len(exact))
    assert recall >= 0.7  # 0.78 measured; 2 dims a byte (pq_bytes 16, 4 dims a byte: about 0.5)


def test_a_saved_index_keeps_its_ivfpq_index_hashed_from_the_file(saved, builds):
    from ivt_hf.search.embeddings_file import EmbeddingsFile

    folder, queries = saved
    settings = FaissSettings("ivfpq", nlist=8, nprobe=8)  # pq_bytes by default: 16 for 64-d
    first = _hits(folder, queries, settings)
    (name,) = _cache_files(folder)
    assert name.startswith("ivfpq-") and len(builds) == 1
    assert _hits(folder, queries, settings) == first and len(builds) == 1  # read from faiss/
    assert _hits(folder, queries, FaissSettings("ivfpq", nlist=8, nprobe=8, pq_bytes=8)) != first
    assert len(builds) == 2 and len(_cache_files(folder)) == 2  # pq_bytes shapes the index: another file
    loaded = GalleryIndex.load(folder)
    streamed = EmbeddingsFile.open(folder / "embeddings.safetensors").digest()
    assert streamed == faiss_cache_module.embeddings_digest(loaded.embeddings.clone())  # the digest the cache keeps


def _craft(path: Path, entry: dict, data: bytes) -> None:
    """A safetensors file whose one tensor `embeddings` is described by `entry`, followed by `data`."""
    header = json.dumps({"embeddings": entry}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dtype": "F32", "shape": [50, 64], "data_offsets": [4096, 4096 + 50 * 256]}, "lie outside the file"),
        ({"dtype": "F32", "shape": [50, 64], "data_offsets": [0, 2**62]}, "lie outside the file"),
        ({"dtype": "F32", "shape": [49, 64], "data_offsets": [0, 49 * 256]}, r"holds \(49, 64\) embeddings where"),
        ({"dtype": "F32", "shape": [50, 32], "data_offsets": [0, 50 * 128]}, r"holds \(50, 32\) embeddings where"),
        ({"dtype": "F16", "shape": [50, 64], "data_offsets": [0, 50 * 128]}, "'F16', not F32"),
        ({"dtype": "F32", "shape": [3200], "data_offsets": [0, 50 * 256]}, "is not 2-D"),
        ({"dtype": "F32", "shape": [50, 64], "data_offsets": [0, 100]}, "do not hold"),
    ],
)
def test_a_crafted_embeddings_file_is_refused_naming_it(tmp_path, entry, message):
    gallery = clustered(50)
    folder = tmp_path / "index"
    _save(gallery, [f"{number}.jpg" for number in range(50)], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "hidden_size": 64}))
    path = folder / "embeddings.safetensors"
    _craft(path, entry, gallery.numpy().tobytes())
    with pytest.raises(index_module.GalleryIndexError, match=f"^{path}.*{message}") as caught:
        GalleryIndex.load(folder)
    assert "\n" not in str(caught.value)


def test_pq_bytes_must_divide_the_dimension(saved, capsys):
    from helpers.commands import error_lines, run_cli

    with pytest.raises(ValueError, match="--pq_bytes 7 does not divide the embedding dimension 64"):
        FaissSettings("ivfpq", pq_bytes=7).build_key(1000, dim=64)
    assert FaissSettings("ivfpq").build_key(1000, dim=768)["pq_bytes"] == 64
    assert FaissSettings("ivfpq").build_key(1000, dim=64)["pq_bytes"] == 16
    folder, _ = saved
    code, _, err = run_cli([*f"search --index {folder} --faiss ivfpq --pq_bytes 7".split(), "a man"], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert "--pq_bytes 7 does not divide the embedding dimension 64" in error_lines(err)[0]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_flat_and_hnsw_from_the_embeddings_file_never_read_it_whole(tmp_path, kind):
    import tracemalloc

    import faiss

    from ivt_hf.search.embeddings_file import EmbeddingsFile

    gallery = clustered(5000)
    _save(gallery, [f"{number}.jpg" for number in range(len(gallery))], tmp_path / "index")
    stored = EmbeddingsFile.open(tmp_path / "index" / "embeddings.safetensors")
    tracemalloc.start()  # numpy's arrays are traced (FAISS's own storage is not): what the build reads at once
    try:
        index = build_faiss_index(stored, FaissSettings(kind, hnsw_m=8), chunk_rows=500)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * 5000 * 64 * 4  # flat: a chunk of 500 rows at a time; hnsw: the file mapped, not copied
    assert index.ntotal == 5000 and index.search(gallery[:20].numpy(), 1)[1][:, 0].tolist() == list(range(20))
    if kind == "flat":
        assert bytes(faiss.serialize_index(index)) == bytes(faiss.serialize_index(build_faiss_index(gallery)))
