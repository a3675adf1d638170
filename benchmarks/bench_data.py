"""Data pipeline speed: the SynthPEDES generator (images/s) and `ivt data prepare` (seconds per 1,000 images).

    .venv/bin/python benchmarks/bench_data.py                  # about 30 s on the 2-core machine
    .venv/bin/python benchmarks/bench_data.py --num_ids 1300   # the demo size, slower

Generator: `synthpedes.plan` (attributes, captions, nuisance factors; no pixels) timed apart from `write_plan`
(render + JPEG encode + write + annotation files), at 128x64 and 384x128, single process. Prepare: the 384x128
SynthPEDES folder in the CUHK-PEDES layout goes through exactly what `ivt data prepare` runs: normalise with image
verification (a full decode of every image), then `save_to_disk`, which embeds the image bytes. The normalise step is
also timed without verification, to show what the decode costs. Real CUHK-PEDES images are smaller (about 100x250),
so real copies should decode somewhat faster per image than these. Last, the floor (random) and ceiling
(exact-attribute oracle) of the demo SynthPEDES test split (200 identities, seed 0).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from ivt_hf.data import normalise_benchmark, split_counts
from ivt_hf.data import synthpedes as synth
from ivt_hf.evaluation.floor_and_ceiling import baseline_metrics


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def bench_generator(work: Path, num_ids: int, image_size: tuple[int, int]) -> tuple[Path, dict[str, float]]:
    config = synth.make_config(num_ids=num_ids, image_size=image_size, seed=0)
    synth_plan, plan_seconds = timed(synth.plan, config)
    folder = work / f"synth_{image_size[0]}x{image_size[1]}"
    folder.mkdir()
    _, write_seconds = timed(synth.write_plan, synth_plan, folder, progress=False)
    images = len(synth_plan.images)
    captions = sum(len(image.captions) for image in synth_plan.images)
    return folder, {
        "images": images,
        "captions_per_s": captions / plan_seconds,
        "images_per_s": images / write_seconds,
        "images_per_s_with_plan": images / (plan_seconds + write_seconds),
    }


def bench_prepare(folder: Path, output: Path) -> dict[str, float]:
    normalise_benchmark("cuhk-pedes", folder, verify_images=False)  # warm-up: imports and first-call costs
    (_, _), quick_seconds = timed(normalise_benchmark, "cuhk-pedes", folder, verify_images=False, source="synthpedes")
    (dataset, _), verify_seconds = timed(normalise_benchmark, "cuhk-pedes", folder, source="synthpedes")
    _, save_seconds = timed(dataset.save_to_disk, str(output))
    images = sum(split_counts(split).images for split in dataset.values())
    megabytes = sum(path.stat().st_size for path in output.rglob("*") if path.is_file()) / 2**20
    per_thousand = 1000 / images
    return {
        "images": images,
        "normalise_no_verify": quick_seconds * per_thousand,
        "normalise_verify": verify_seconds * per_thousand,
        "save_to_disk": save_seconds * per_thousand,
        "prepare": (verify_seconds + save_seconds) * per_thousand,
        "output_mb": megabytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_ids", type=int, default=400, help="identities generated per image size")
    parser.add_argument("--oracle_seeds", type=int, default=8, help="seeds for the spread of the oracle ceiling")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        print(f"SynthPEDES generator, {args.num_ids} identities, seed 0, one process")
        print(f"{'size':>8}  {'images':>6}  {'render+write img/s':>18}  {'incl. plan img/s':>16}  {'captions/s':>10}")
        folders = {}
        for image_size in ((128, 64), (384, 128)):
            folders[image_size], result = bench_generator(work, args.num_ids, image_size)
            print(
                f"{image_size[0]:>4}x{image_size[1]:<3}  {result['images']:>6}  {result['images_per_s']:>18.0f}  "
                f"{result['images_per_s_with_plan']:>16.0f}  {result['captions_per_s']:>10.0f}"
            )
        result = bench_prepare(folders[(384, 128)], work / "prepared")
        print(f"\nprepare (CUHK-PEDES layout, 384x128 JPEG, {result['images']} images), seconds per 1,000 images")
        print(f"  normalise, no image verification   {result['normalise_no_verify']:6.2f}")
        print(f"  normalise, decode every image      {result['normalise_verify']:6.2f}")
        print(f"  save_to_disk (embeds image bytes)  {result['save_to_disk']:6.2f}")
        print(f"  prepare total (verify + save)      {result['prepare']:6.2f}   output {result['output_mb']:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    demo = synth.plan(synth.make_config())  # attributes and captions only: the baselines need no pixels
    test_images = [image for image in demo.images if image.identity.split == "test"]
    results, seconds = timed(baseline_metrics, synth.planned_baseline_inputs(test_images), seed=0)
    print(f"\nSynthPEDES demo test split (seed 0, {len(test_images)} images), standard protocol ({seconds:.1f} s)")
    for name, metrics in results.items():
        print(f"  {name:<6}  " + "  ".join(f"{key} {value:6.2f}" for key, value in metrics.items()))

    # how much the ceiling moves with the seed: 200-id test splits alone (each seed gives other families)
    oracle_r1 = []
    for seed in range(args.oracle_seeds):
        config = synth.make_config(split_ids={"train": 1, "validation": 1, "test": 200}, seed=seed)
        images = [image for image in synth.plan(config).images if image.identity.split == "test"]
        oracle_r1.append(baseline_metrics(synth.planned_baseline_inputs(images), seed=seed)["oracle"]["R1"])
    if oracle_r1:
        print(
            f"  oracle R1 over seeds 0-{len(oracle_r1) - 1} (200-id test splits): min {min(oracle_r1):.1f}, "
            f"mean {sum(oracle_r1) / len(oracle_r1):.1f}, max {max(oracle_r1):.1f}"
        )


if __name__ == "__main__":
    main()
