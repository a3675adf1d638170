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
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ivt_hf.search import FaissSettings, GalleryIndex, build_faiss_index
from ivt_hf.search.index import INDEX_FORMAT_VERSION

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
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
