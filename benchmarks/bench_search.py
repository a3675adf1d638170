"""Gallery search at 10k, 100k and 1M vectors: exact vs approximate (FAISS IVF, HNSW), one table.

    python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--dim 768] [--queries 1000] [--hnsw_max 100000]

The gallery is synthetic: normalised vectors around one random centre per person (5 images per person, as in the
benchmarks), queries are noisy copies of random gallery vectors (the text-to-image gap). Per size and method it
prints the build time, the memory the index adds (resident set growth), the latency per query with the queries in
batches of 256 and with one query at a time (median of 50), and recall@10 against the exact top-10 of the same
queries. Exact search is `GalleryIndex.search_embeddings` (a matrix product + top-k); the others go through
`build_faiss_index` with the settings shown. HNSW is built only up to `--hnsw_max` vectors (its build is the slow
part on 2 cores).

A second table times opening the FAISS index of a saved index folder, as `ivt search --faiss` and `ivt app --faiss`
do: the first open (hash the embeddings, build, save to the folder's `faiss/` cache) against the next one (hash,
check and read the cached file), and checks that both give the same top-10 (`--no_open_times` leaves it out).

Out of core, for galleries larger than memory (10M x 768 float32 = 30.7 GB):

    python benchmarks/bench_search.py --sizes 10000000 --out_of_core --workdir DIR --queries 10000 --nlist 4096

writes the gallery a block at a time straight to DIR/index-SIZExDIM-seedS/embeddings.safetensors (kept with
`--keep_files` and reused by the next run), samples `--queries` rows as queries, and reports per method the build
time, bytes a vector, peak memory (VmHWM of this process and its children during the build), latency per query
(batched, single) and recall@10 against the exact top-10: flat is that exact chunked scan of the file (its build is
nothing, its batched latency the scan time per query); ivf is IVF-SQ8 (IVF-Flat's lists would be the 30 GB of floats
again); ivfpq is the package's out-of-core build (`build_faiss_index` over an `EmbeddingsFile`); Milvus Lite
(pymilvus over a local .db, `--milvus_index`) holds what `--milvus_max_rows` / `--milvus_max_seconds` let it insert,
its recall against the exact top-10 among those rows. At 10M on 2 cores, plan on about two hours (benchmarks/README.md:
the exact scan of 10k queries and the assignment of 10M vectors to centroids, twice, dominate); `--nlist 4096` keeps
the k-means affordable (the default, 4 x sqrt(10M) = 12,649 centroids on 632k rows, would take hours), `--skip`
leaves methods out.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ivt_hf.search import FaissSettings, GalleryIndex, build_faiss_index
from ivt_hf.search.embeddings_file import EmbeddingsFile, write_embeddings
from ivt_hf.search.index import INDEX_EMBEDDINGS, INDEX_FORMAT_VERSION

BATCH = 256


def resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def clustered_gallery(count: int, dim: int, images_per_person: int, seed: int) -> torch.Tensor:
    """Two levels, as person embeddings are: looks (one per 100 people: clothing, build) -> people -> images."""
    generator = torch.Generator().manual_seed(seed)
    people = max(1, count // images_per_person)
    looks = torch.randn(max(1, people // 100), dim, generator=generator)
    persons = looks[torch.randint(len(looks), (people,), generator=generator)]
    persons += 0.8 * torch.randn(people, dim, generator=generator)
    gallery = torch.empty(count, dim)
    for start in range(0, count, 100_000):  # in blocks: the noise of 1M x 768 at once would double the peak
        stop = min(count, start + 100_000)
        owners = torch.arange(start, stop) // images_per_person % people
        block = persons[owners] + 0.6 * torch.randn(stop - start, dim, generator=generator)
        gallery[start:stop] = torch.nn.functional.normalize(block, dim=1)
    return gallery


def make_queries(gallery: torch.Tensor, count: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of random gallery vectors; `noise` is per dimension (a unit vector has 1 / sqrt(dim) per dim)."""
    generator = torch.Generator().manual_seed(seed + 1)
    sources = torch.randint(len(gallery), (count,), generator=generator)
    picked = gallery[sources]
    noisy = torch.nn.functional.normalize(picked + noise * torch.randn(picked.shape, generator=generator), dim=1)
    return noisy, sources


def timed_search(search, queries: torch.Tensor) -> tuple[list[set[int]], float, float]:
    """(top-10 sets, ms per query batched, ms per single query)."""
    start = time.perf_counter()
    top = []
    for first in range(0, len(queries), BATCH):
        top += search(queries[first : first + BATCH])
    batched = 1000 * (time.perf_counter() - start) / len(queries)
    singles = []
    for row in range(min(50, len(queries))):
        start = time.perf_counter()
        search(queries[row : row + 1])
        singles.append(1000 * (time.perf_counter() - start))
    return top, batched, statistics.median(singles)


def open_times(
    gallery: torch.Tensor, settings: FaissSettings, queries: torch.Tensor
) -> tuple[float, float, float, bool]:
    """(first open s, cached open s, cache file MiB, same top-10) for the FAISS index of a saved index folder."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [f"{number}.jpg" for number in range(len(gallery))]  # image names: what an index holds
        GalleryIndex(gallery, paths, {"format_version": INDEX_FORMAT_VERSION}).save(folder)
        seconds, found = [], []
        for _ in range(2):  # the first open builds and saves; the second reads the saved file
            index = GalleryIndex.load(folder)
            start = time.perf_counter()
            faiss_index = index.faiss_index(settings)
            seconds.append(time.perf_counter() - start)
            found.append(faiss_index.search(queries.numpy(), 10)[1].tolist())
            del index, faiss_index
            gc.collect()
        (cache_file,) = (Path(folder) / "faiss").iterdir()
        return seconds[0], seconds[1], cache_file.stat().st_size / 2**20, found[0] == found[1]


def print_tables(args, rows: list[tuple], cosines: list[float], opens: list[tuple]) -> None:
    """The in-memory tables: each method per size, its speed-up over exact search, and the open times."""
    print(
        f"\n{args.dim}-d normalised vectors, {args.queries} queries (mean cosine to the vector each was made from: "
        f"{statistics.mean(cosines):.2f}), {args.threads} threads; latency per query"
    )
    header = ("gallery", "method", "build s", "index MiB", "batched ms/q", "single ms/q", "recall@10")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size, method, build_seconds, added_mib, batched, single, recall in rows:
        print(
            f"| {size:,} | {method} | {build_seconds:.1f} | {added_mib:,.0f} | {batched:.2f} | {single:.2f} | "
            f"{recall:.3f} |"
        )
    for size in args.sizes:
        exact_row = next(row for row in rows if row[0] == size and row[1].startswith("exact"))
        for row in rows:
            if row[0] == size and not row[1].startswith("exact"):
                print(
                    f"{size:,} {row[1].split()[0]}: {exact_row[4] / row[4]:.1f}x faster batched, "
                    f"{exact_row[5] / row[5]:.1f}x single, recall@10 {row[6]:.3f}"
                )
    if opens:
        print("\nopening the FAISS index of a saved index folder (GalleryIndex.load(folder).faiss_index(settings))")
        header = (
            "gallery",
            "method",
            "first open s (hash, build, save)",
            "cached open s (hash, check, read)",
            "cache MiB",
            "speed-up",
            "same top-10",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for size, method, first, cached, mib, same in opens:
            print(
                f"| {size:,} | {method} | {first:.2f} | {cached:.2f} | {mib:,.0f} | {first / cached:.0f}x | "
                f"{'yes' if same else 'NO'} |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--images_per_person", type=int, default=5)
    parser.add_argument("--query_noise", type=float, default=0.03, help="per dimension, added to a gallery vector")
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--hnsw_max", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_open_times", action="store_true", help="leave out the first vs cached open table")
    out_of_core_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.out_of_core:
        if not args.workdir:
            parser.error("--out_of_core needs --workdir (a folder with 4 x dim bytes a vector free)")
        return run_out_of_core(args)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rows, cosines, opens = [], [], []
    for size in tqdm(args.sizes, desc="gallery sizes", unit="size"):
        gallery = clustered_gallery(size, args.dim, args.images_per_person, args.seed)
        queries, sources = make_queries(gallery, args.queries, args.seed, args.query_noise)
        cosines.append(float((queries * gallery[sources]).sum(1).mean()))
        index = GalleryIndex(gallery, [str(number) for number in range(size)])

        def exact(batch, index=index):
            return [{int(hit.path) for hit in row} for row in index.search_embeddings(batch, k=10)]

        truth, batched, single = timed_search(exact, queries)
        rows.append((size, "exact (matmul + top-k)", 0.0, 0.0, batched, single, 1.0))
        methods = [("ivf", FaissSettings("ivf", nprobe=args.nprobe))]
        if size <= args.hnsw_max:
            methods.append(("hnsw", FaissSettings("hnsw", hnsw_m=32, ef_search=128)))
        for name, settings in methods:
            gc.collect()
            before, start = resident_mib(), time.perf_counter()
            faiss_index = build_faiss_index(gallery, settings, seed=args.seed)
            build_seconds, added_mib = time.perf_counter() - start, resident_mib() - before

            def approximate(batch, faiss_index=faiss_index):
                _, found = faiss_index.search(batch.numpy(), 10)
                return [{int(i) for i in row if i >= 0} for row in found]

            top, batched, single = timed_search(approximate, queries)
            recall = sum(len(a & t) for a, t in zip(top, truth)) / (10 * len(truth))
            detail = (
                f"nlist {faiss_index.nlist}, nprobe {faiss_index.nprobe}"
                if name == "ivf"
                else f"M {settings.hnsw_m}, efSearch {settings.ef_search}"
            )
            rows.append((size, f"{name} ({detail})", build_seconds, added_mib, batched, single, recall))
            del faiss_index
            if not args.no_open_times:
                opens.append((size, f"{name} ({detail})", *open_times(gallery, settings, queries)))
        del gallery, index
        gc.collect()

    print_tables(args, rows, cosines, opens)


# --out_of_core: the gallery lives in an index folder's embeddings.safetensors, never whole in memory


def _descendants(pid: int | str = "self") -> list[str]:
    """The process ids under `pid` (Milvus Lite may serve from a child process: its memory is the store's)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def reset_peak() -> None:
    """Start the resident-set high-water marks (VmHWM) of this process and its children anew (Linux clear_refs 5)."""
    for pid in ["self", *_descendants()]:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_mib() -> float:
    """VmHWM of this process plus its children's, in MiB: the most memory resident at once since `reset_peak`."""
    total = 0
    for pid in ["self", *_descendants()]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
    return total / 1024


def write_gallery_file(path: Path, count: int, dim: int, images_per_person: int, seed: int) -> EmbeddingsFile:
    """`clustered_gallery`'s two levels (looks -> people -> images), drawn a block of whole people at a time and
    written straight to `path` (safetensors): memory holds the looks and one block, never the gallery."""
    generator = torch.Generator().manual_seed(seed)
    people = max(1, count // images_per_person)
    looks = torch.randn(max(1, people // 100), dim, generator=generator)
    block_rows = images_per_person * max(1, 65_536 // images_per_person)

    def blocks():
        for start in range(0, count, block_rows):
            stop = min(count, start + block_rows)
            first, last = start // images_per_person, (stop - 1) // images_per_person + 1
            persons = looks[torch.randint(len(looks), (last - first,), generator=generator)]
            persons += 0.8 * torch.randn(persons.shape, generator=generator)
            owners = torch.arange(start, stop) // images_per_person - first
            block = persons[owners] + 0.6 * torch.randn(stop - start, dim, generator=generator)
            yield torch.nn.functional.normalize(block, dim=1).numpy()

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_embeddings(path, count, dim, blocks())


def sample_queries(stored: EmbeddingsFile, count: int, seed: int, noise: float) -> torch.Tensor:
    """`make_queries` over a file: noisy copies of `count` random gallery rows, read one by one."""
    rows = np.sort(np.random.default_rng(seed + 1).choice(stored.rows, size=min(count, stored.rows), replace=False))
    picked = torch.from_numpy(stored.take(rows))
    noisy = picked + noise * torch.randn(picked.shape, generator=torch.Generator().manual_seed(seed + 2))
    return torch.nn.functional.normalize(noisy, dim=1)


def exact_scan(stored: EmbeddingsFile, queries: torch.Tensor, rows: int, chunk: int = 8192) -> np.ndarray:
    """The exact top-10 gallery rows of each query among the first `rows`: a matrix product per chunk of the file
    and a running top-10 merge, so memory holds one chunk and a (queries x chunk) score block. Chunks are read,
    not mapped: mapped pages would count in the resident set as they are touched, the whole file in the end."""
    best_scores = torch.full((len(queries), 10), -torch.inf)
    best_rows = torch.full((len(queries), 10), -1, dtype=torch.long)
    for start in range(0, rows, chunk):
        block = torch.from_numpy(stored[start : min(rows, start + chunk)])
        scores, found = (queries @ block.t()).topk(min(10, len(block)), dim=1)
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_rows = torch.cat([best_rows, found + start], dim=1)
        best_scores, order = merged_scores.topk(10, dim=1)
        best_rows = merged_rows.gather(1, order)
    return best_rows.numpy()


def serialized_bytes(index) -> int:
    """The size of a FAISS index as `faiss.write_index` writes it, counted as it streams (nothing kept)."""
    import faiss

    total = 0

    def count(chunk: bytes) -> int:
        nonlocal total
        total += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total


def recall_at_10(found: list[set[int]], truth: np.ndarray) -> float:
    return sum(len(hits & set(row.tolist())) for hits, row in zip(found, truth)) / (10 * len(truth))


def build_ivf_sq8(stored: EmbeddingsFile, nlist: int, train_sample: int, seed: int):
    """IVF with 8-bit scalar-quantized lists (768 B a 768-d vector): IVF-Flat's lists would be the 30 GB of floats
    at 10M, and FAISS's on-disk lists would need those 30 GB again on a disk that holds the gallery file already.
    Trained and filled as the package's ivfpq build is (`build_faiss_index`): a sample, then a chunk at a time."""
    import faiss

    quantizer = faiss.IndexFlatIP(stored.dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, stored.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = seed
    rows = np.sort(np.random.default_rng(seed).choice(stored.rows, size=min(train_sample, stored.rows), replace=False))
    index.train(stored.take(rows))
    for _, block in stored.chunks():
        index.add(block)
    return index


def faiss_rows(stored, queries, truth, args) -> list[tuple]:
    """ivf (SQ8) and ivfpq (the package's out-of-core build) rows: build s, bytes/vector, peak MiB, latencies,
    recall@10 against `truth`."""
    rows = []
    ivfpq = FaissSettings(
        "ivfpq", nlist=args.nlist, nprobe=args.nprobe, pq_bytes=args.pq_bytes, train_sample=args.train_sample
    )
    key = ivfpq.build_key(stored.rows, args.seed, stored.dim)
    builds = {
        "ivf": lambda: build_ivf_sq8(stored, key["nlist"], key["train_sample"], args.seed),
        "ivfpq": lambda: build_faiss_index(stored, ivfpq, seed=args.seed),
    }
    for name, build in builds.items():
        if name in args.skip:
            continue
        gc.collect()
        reset_peak()
        start = time.perf_counter()
        faiss_index = build()
        build_seconds, peak = time.perf_counter() - start, peak_mib()
        faiss_index.nprobe = min(args.nprobe, faiss_index.nlist)

        def search(batch, faiss_index=faiss_index):
            return [{int(i) for i in row if i >= 0} for row in faiss_index.search(batch.numpy(), 10)[1]]

        top, batched, single = timed_search(search, queries)
        detail = f"SQ8, nlist {faiss_index.nlist}" if name == "ivf" else f"PQ {key['pq_bytes']} B, nlist {key['nlist']}"
        per_vector = serialized_bytes(faiss_index) / stored.rows
        rows.append(
            (
                f"{name} ({detail}, nprobe {faiss_index.nprobe})",
                build_seconds,
                per_vector,
                peak,
                batched,
                single,
                recall_at_10(top, truth),
            )
        )
        del faiss_index, search  # the closure holds the index too: the next build's peak must not include it
    return rows


# Milvus Lite 3 builds these with FAISS (IVF_PQ is not implemented there); a server offers IVF_PQ too
MILVUS_PARAMS = {  # index params, search params
    "FLAT": (lambda args, nlist: {}, lambda args: {}),
    "IVF_FLAT": (lambda args, nlist: {"nlist": nlist}, lambda args: {"nprobe": args.nprobe}),
    "IVF_SQ8": (lambda args, nlist: {"nlist": nlist}, lambda args: {"nprobe": args.nprobe}),
    "HNSW": (lambda args, nlist: {"M": 32, "efConstruction": 80}, lambda args: {"ef": 128}),
}


def _milvus_insert(client, stored: EmbeddingsFile, args) -> int:
    """Rows inserted from the file in batches of 10,000 until all, `--milvus_max_rows` or `--milvus_max_seconds`."""
    limit, start, inserted = min(stored.rows, args.milvus_max_rows), time.perf_counter(), 0
    while inserted < limit and time.perf_counter() - start < args.milvus_max_seconds:
        block = stored[inserted : min(limit, inserted + 10_000)]
        client.insert("gallery", [{"id": inserted + i, "vector": row} for i, row in enumerate(block.tolist())])
        inserted += len(block)
    return inserted


def _release_milvus_lite(path: Path) -> None:
    """Stop the Milvus Lite server of `path` now (else it runs, and writes there, until the process exits)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:  # a Milvus server, not Lite
        return
    server_manager_instance.release_server(str(path))


def milvus_row(stored: EmbeddingsFile, queries: torch.Tensor, truth: np.ndarray, args) -> tuple:
    """Milvus Lite (pymilvus `MilvusClient` over a local .db) holding as much of the gallery as the guards allow:
    build s (insert + index + load), bytes/vector of its files, peak MiB (this process and its children), latencies
    and recall@10 against the exact top-10 among the rows it holds."""
    from pymilvus import DataType, MilvusClient

    folder = Path(tempfile.mkdtemp(prefix="milvus-", dir=args.workdir))  # ours: removed at the end
    try:
        client = MilvusClient(str(folder / "bench.db"))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=stored.dim)
        client.create_collection("gallery", schema=schema)
        index_params, search_params = MILVUS_PARAMS[args.milvus_index]
        gc.collect()
        reset_peak()
        start = time.perf_counter()
        held = _milvus_insert(client, stored, args)
        client.flush("gallery")  # sealed segments: indexed (a growing one is searched by brute force)
        nlist = FaissSettings("ivf", nlist=args.nlist).ivf_nlist(held)
        params = client.prepare_index_params()
        params.add_index(
            field_name="vector", index_type=args.milvus_index, metric_type="IP", params=index_params(args, nlist)
        )
        client.create_index("gallery", params)
        client.load_collection("gallery")
        build_seconds, peak = time.perf_counter() - start, peak_mib()
        held_truth = truth if held == stored.rows else exact_scan(stored, queries, held)

        def search(batch):
            found = client.search(
                "gallery",
                data=batch.tolist(),
                limit=10,
                search_params={"metric_type": "IP", "params": search_params(args)},
            )
            return [{int(hit["id"]) for hit in row} for row in found]

        top, batched, single = timed_search(search, queries)
        client.close()
        _release_milvus_lite(folder / "bench.db")
        per_vector = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / held
        method = f"milvus lite ({args.milvus_index}" + (
            f", holds {held:,} of {stored.rows:,})" if held < stored.rows else ")"
        )
        return (held, method, build_seconds, per_vector, peak, batched, single, recall_at_10(top, held_truth))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def gallery_file(args, size: int) -> tuple[EmbeddingsFile, float]:
    """The gallery of `size` rows in `--workdir`: written (seconds) or, when an earlier run left the same one
    (same size, dim, seed), reused (0 s)."""
    path = Path(args.workdir) / f"index-{size}x{args.dim}-seed{args.seed}" / INDEX_EMBEDDINGS
    if path.is_file():
        try:
            return EmbeddingsFile.open(path, rows=size, dim=args.dim), 0.0
        except ValueError:
            path.unlink()  # a file this bench wrote and did not finish
    start = time.perf_counter()
    stored = write_gallery_file(path, size, args.dim, args.images_per_person, args.seed)
    return stored, time.perf_counter() - start


def flat_row(stored: EmbeddingsFile, queries: torch.Tensor) -> tuple[np.ndarray, tuple]:
    """(exact top-10, the flat row): the chunked scan, its time per query batched (all queries in one scan), and one
    query's scan of up to 1M rows, scaled to the gallery."""
    gc.collect()
    reset_peak()
    start = time.perf_counter()
    truth = exact_scan(stored, queries, stored.rows)
    seconds, peak = time.perf_counter() - start, peak_mib()
    prefix = min(stored.rows, 1_000_000)
    start = time.perf_counter()
    exact_scan(stored, queries[:1], prefix)
    single = 1000 * (time.perf_counter() - start) * stored.rows / prefix
    label = "flat (chunked scan of the file" + (", single scaled from 1M rows)" if prefix < stored.rows else ")")
    return truth, (label, seconds, 4.0 * stored.dim, peak, 1000 * seconds / len(queries), single, 1.0)


def run_out_of_core(args) -> None:
    """The --out_of_core table: per size, the gallery file, the exact scan (flat), ivf (SQ8), ivfpq, Milvus Lite."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    baseline, rows = resident_mib(), []
    for size in args.sizes:
        stored, write_seconds = gallery_file(args, size)
        print(f"{size:,} x {args.dim} gallery file: {stored.path} ({write_seconds:.0f} s to write)", flush=True)
        queries = sample_queries(stored, args.queries, args.seed, args.query_noise)
        truth, flat = flat_row(stored, queries)
        rows.append((size, *flat))
        rows += [(size, *row) for row in faiss_rows(stored, queries, truth, args)]
        if "milvus" not in args.skip:
            rows.append(milvus_row(stored, queries, truth, args))
        if not args.keep_files:
            stored.path.unlink()
            stored.path.parent.rmdir()
    print(
        f"\nout of core: {args.dim}-d normalised vectors in a safetensors file, {args.queries} queries, "
        f"{args.threads} threads; peak = VmHWM (this process + children) during the build, {baseline:,.0f} MiB "
        "resident before any; latency per query"
    )
    header = ("gallery", "method", "build s", "bytes/vector", "peak MiB", "batched ms/q", "single ms/q", "recall@10")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size, method, build_seconds, per_vector, peak, batched, single, recall in rows:
        print(
            f"| {size:,} | {method} | {build_seconds:.1f} | {per_vector:,.0f} | {peak:,.0f} | {batched:.3f} | "
            f"{single:.2f} | {recall:.3f} |"
        )


def out_of_core_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--out_of_core (e.g. --sizes 10000000 --out_of_core --workdir DIR)")
    group.add_argument("--out_of_core", action="store_true", help="gallery in a file on disk, never whole in memory")
    group.add_argument("--workdir", help="where the gallery file (4 x dim bytes a vector) and Milvus Lite's files go")
    group.add_argument("--skip", nargs="+", default=[], choices=["ivf", "ivfpq", "milvus"], help="methods left out")
    group.add_argument("--nlist", type=int, help="ivf, ivfpq, Milvus: centroids (default about 4 x sqrt(size))")
    group.add_argument("--train_sample", type=int, help="ivf, ivfpq: training rows (default 50 per centroid)")
    group.add_argument("--pq_bytes", type=int, help="ivfpq: bytes a vector (default 64 at 768)")
    group.add_argument("--milvus_index", default="IVF_SQ8", choices=sorted(MILVUS_PARAMS))
    group.add_argument(
        "--milvus_max_rows",
        type=int,
        default=500_000,
        help="Milvus Lite holds at most these (it peaked at 4.7 GB for 200k x 768: 1M would fill 24 GiB)",
    )
    group.add_argument("--milvus_max_seconds", type=float, default=1800, help="and inserts for at most this long")
    group.add_argument("--keep_files", action="store_true", help="keep the gallery file for the next run")


if __name__ == "__main__":
    main()
