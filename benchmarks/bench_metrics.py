"""Benchmark `ivt_hf.evaluation.retrieval_metrics` against a straightforward argsort reference, side by side.

    .venv/bin/python benchmarks/bench_metrics.py                 # both sizes, both sides (about 2 minutes)
    .venv/bin/python benchmarks/bench_metrics.py --sizes cuhk    # CUHK-PEDES-sized only
    .venv/bin/python benchmarks/bench_metrics.py --sizes icfg --data random --sides ours   # our worst case

Each (size, side) runs in a fresh subprocess that builds the same seeded synthetic data, then measures the metric
call alone: wall time, CPU time, and peak resident memory ABOVE what the process held once the similarity matrix
existed (the kernel's high-water mark is reset after the data is built, via /proc/self/clear_refs). So "peak above
input" excludes the matrix itself (1.58 GB at ICFG-PEDES size) and the interpreter; add them for a process total.

Synthetic data: identity centres in 256-D, image and text embeddings = centre + Gaussian noise, L2-normalised,
cosine similarity in float32. ICFG-PEDES-sized: 1,000 ids, 19,848 images (about 20 per id, uneven), one caption per
image. CUHK-PEDES-sized: 1,000 ids, 3,074 images, 6,156 captions. The noise is chosen so that R@1 is near what
trained models reach (about 45-65%), with a heavier tail of badly ranked positives than real models (mINP about 1%
at ICFG size, where published models reach several %), so the default data errs on the slow side for ours, whose
cost grows with the number of negatives that outrank the lowest positive. `--data random` (scores unrelated to the
ids) is its worst case.

The reference is the IRRA `rank` compute pattern written from the definitions: a full descending argsort of each
query row, gather the gallery ids, match, cumulative sums, precision at each positive. Run unchunked at ICFG-PEDES
size it needs about 14.6 GB and a minute (issue 5), too much for a shared 24 GB machine, so it runs over chunks of
`--reference-chunk-rows` query rows (same arithmetic, memory bounded by the chunk). It breaks ties in whatever order
the argsort leaves them; ours ranks a negative tied with a positive first. Float32 cosines at this size do tie now and
then, so the two can differ in the last digits; the script prints the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from ivt_hf.evaluation import retrieval_metrics

SIZES = {
    # name: (num_ids, num_gallery, num_queries)
    "icfg": (1_000, 19_848, 19_848),
    "cuhk": (1_000, 3_074, 6_156),
}
EMBEDDING_DIM = 256
NOISE = 2.3  # R@1 about 60-70% on both sizes


def make_data(size: str, seed: int, data: str = "model") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded `(similarity, query_pids, gallery_pids)` with every id present in the gallery.

    `data="model"`: cosine of identity-structured embeddings (like a trained model's); `"random"`: standard normal
    scores, unrelated to the ids: ours' worst case, since then nearly every negative outranks some positive.
    """
    num_ids, num_gallery, num_queries = SIZES[size]
    generator = torch.Generator().manual_seed(seed)
    extra = torch.randint(num_ids, (num_gallery - num_ids,), generator=generator)
    gallery_pids = torch.sort(torch.cat([torch.arange(num_ids), extra])).values  # (gallery,), uneven ids
    # Queries: every image's captions, round-robin over the gallery (two per image at CUHK size, one at ICFG size).
    query_pids = gallery_pids[torch.arange(num_queries) % num_gallery]  # (queries,)
    centres = torch.randn(num_ids, EMBEDDING_DIM, generator=generator)
    image_embeds = centres[gallery_pids] + NOISE * torch.randn(num_gallery, EMBEDDING_DIM, generator=generator)
    text_embeds = centres[query_pids] + NOISE * torch.randn(num_queries, EMBEDDING_DIM, generator=generator)
    image_embeds = torch.nn.functional.normalize(image_embeds, dim=1)
    text_embeds = torch.nn.functional.normalize(text_embeds, dim=1)
    if data == "random":
        return torch.randn(num_queries, num_gallery, generator=generator), query_pids, gallery_pids
    return text_embeds @ image_embeds.T, query_pids, gallery_pids  # (queries, gallery) float32


def reference_metrics(
    similarity: torch.Tensor, query_pids: torch.Tensor, gallery_pids: torch.Tensor, chunk_rows: int
) -> dict[str, float]:
    """Standard-protocol R@1/5/10, mAP, mINP via full argsort per query row (IRRA's compute pattern), chunked."""
    hits = {k: [] for k in (1, 5, 10)}
    average_precisions, inverse_negative_penalties = [], []
    num_gallery = similarity.shape[1]
    positions = torch.arange(1, num_gallery + 1, dtype=torch.float64)  # (gallery,) 1-based ranks
    for start in range(0, similarity.shape[0], chunk_rows):
        ranking = torch.argsort(similarity[start : start + chunk_rows], dim=1, descending=True)  # (chunk, gallery)
        matches = gallery_pids[ranking] == query_pids[start : start + chunk_rows, None]  # (chunk, gallery) bool
        cumulative = matches.cumsum(1)  # (chunk, gallery): positives within the top r
        for k in hits:
            hits[k].append(cumulative[:, k - 1] > 0)
        num_relevant = cumulative[:, -1].double()
        average_precisions.append((cumulative / positions * matches).sum(1) / num_relevant)
        last_rank = num_gallery - matches.flip(1).int().argmax(1)  # 1-based rank of the last positive
        inverse_negative_penalties.append(num_relevant / last_rank)
    metrics = {f"R{k}": 100 * torch.cat(flags).double().mean().item() for k, flags in hits.items()}
    metrics["mAP"] = 100 * torch.cat(average_precisions).mean().item()
    metrics["mINP"] = 100 * torch.cat(inverse_negative_penalties).mean().item()
    return metrics


def _memory_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_side(side: str, size: str, data: str, seed: int, repeats: int, reference_chunk_rows: int) -> dict:
    """In this (fresh) process: build the data, reset the memory high-water mark, time the metric call(s)."""
    similarity, query_pids, gallery_pids = make_data(size, seed, data)
    resident_before = _memory_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
        peak_source = "VmHWM after clear_refs"
    except OSError:
        peak_source = "ru_maxrss (includes data building: an upper bound)"
    times, cpu_times = [], []
    for _ in range(repeats if side == "ours" else 1):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        if side == "ours":
            metrics = retrieval_metrics(similarity, query_pids, gallery_pids)
        else:
            metrics = reference_metrics(similarity, query_pids, gallery_pids, reference_chunk_rows)
        times.append(time.perf_counter() - wall_start)
        cpu_times.append(time.process_time() - cpu_start)
    if peak_source.startswith("VmHWM"):
        peak_kib = _memory_kib("VmHWM")
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "side": side,
        "size": size,
        "shape": list(similarity.shape),
        "wall_s": times,
        "cpu_s": cpu_times,
        "input_bytes": similarity.numel() * similarity.element_size(),
        "rss_before_mib": resident_before / 1024,
        "peak_above_input_mib": (peak_kib - resident_before) / 1024,
        "peak_source": peak_source,
        "threads": torch.get_num_threads(),
        "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["icfg", "cuhk"])
    parser.add_argument("--data", choices=["model", "random"], default="model", help="see make_data")
    parser.add_argument("--sides", nargs="+", choices=["reference", "ours"], default=["reference", "ours"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of ours (median reported)")
    parser.add_argument("--reference-chunk-rows", type=int, default=1024)
    parser.add_argument("--side", choices=["ours", "reference"], help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args(argv)

    if args.side:  # child: one size, one side, JSON on stdout
        result = run_side(args.side, args.sizes[0], args.data, args.seed, args.repeats, args.reference_chunk_rows)
        print(json.dumps(result))
        return 0

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"load average at start (1, 5, 15 min): {os.getloadavg()}")
    for size in args.sizes:
        results = {}
        for side in args.sides:
            command = [sys.executable, __file__, "--side", side, "--sizes", size, "--data", args.data]
            command += ["--seed", str(args.seed)]
            command += ["--repeats", str(args.repeats), "--reference-chunk-rows", str(args.reference_chunk_rows)]
            completed = subprocess.run(command, check=True, capture_output=True, text=True)
            results[side] = json.loads(completed.stdout.strip().splitlines()[-1])
        first = next(iter(results.values()))
        shape, size_mib = first["shape"], first["input_bytes"] / 2**20
        print(f"\n{size} ({args.data} scores): similarity {shape[0]} x {shape[1]} float32 ({size_mib:.0f} MiB)")
        print(f"{'side':10s} {'wall s':>8s} {'cpu s':>8s} {'peak above input MiB':>21s}  metrics (%)")
        for side, result in results.items():
            wall, cpu = statistics.median(result["wall_s"]), statistics.median(result["cpu_s"])
            values = " ".join(f"{name} {value:.4f}" for name, value in result["metrics"].items())
            print(f"{side:10s} {wall:8.2f} {cpu:8.2f} {result['peak_above_input_mib']:21.0f}  {values}")
        if len(results) < 2:
            continue
        difference = max(
            abs(results["ours"]["metrics"][name] - value) for name, value in results["reference"]["metrics"].items()
        )
        speedup = statistics.median(results["reference"]["wall_s"]) / statistics.median(results["ours"]["wall_s"])
        print(
            f"ours: wall times {[round(t, 3) for t in results['ours']['wall_s']]} (median shown); "
            f"speed-up {speedup:.0f}x; largest metric difference {difference:.2e} points; peak via "
            f"{results['ours']['peak_source']}"
        )
    print(f"\nload average at end (1, 5, 15 min): {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
