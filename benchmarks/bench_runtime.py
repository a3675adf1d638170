"""Runtimes side by side on CPU, in one run: images/s and texts/s of the full-size IVT (base preset, random weights)
under PyTorch fp32, onnxruntime fp32 and onnxruntime int8 (`ivt export onnx --dtype int8`), then the SynthPEDES test
R@1 of the 2,400-step demo model under each.

    python benchmarks/bench_runtime.py --demo_model /tmp/demo-steps/steps-2400/model --data_root /tmp/demo-steps/data
    python benchmarks/bench_runtime.py --demo_model ... --data_root ... --quick     (tiny preset, one repeat: a check)
    python benchmarks/bench_runtime.py ... --profile                               (onnxruntime's time per op type)

Every model goes through the package's own path: saved, exported with `export_onnx` (optimum's `main_export`), run
by `IVTOnnxEncoder` (onnxruntime, never torch) and evaluated by `evaluate_split`. Throughput: batch 8 images and 32
captions of 64 tokens (half of them padded to 32), one warm-up call, the median of `--repeats`; torch and
onnxruntime both get `--threads` threads. The demo model's data: the `data/` folder of its `ivt demo` run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RUNTIMES = ("pytorch fp32", "onnxruntime fp32", "onnxruntime int8")


def median_rate(function, items: int, repeats: int) -> float:
    function()  # warm-up
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return items / statistics.median(durations)


def exported(model_dir: Path, work: Path, threads: int) -> dict:
    """The PyTorch model of `model_dir` and its fp32 and int8 ONNX encoders, each with its processor."""
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.onnx.export import export_onnx
    from ivt_hf.onnx.runtime import load_onnx_model_and_processor

    runtimes = {RUNTIMES[0]: load_model_and_processor(model_dir)}
    for dtype, name in (("fp32", RUNTIMES[1]), ("int8", RUNTIMES[2])):
        export_onnx(model_dir, work / f"{model_dir.name}-{dtype}", dtype=dtype, overwrite=True)
        runtimes[name] = load_onnx_model_and_processor(work / f"{model_dir.name}-{dtype}", threads=threads)
    return runtimes


def throughput(preset: str, work: Path, args) -> dict[str, list[float]]:
    """images/s, texts/s and the lowest image cosine to PyTorch fp32 per runtime, full-size model, random weights."""
    from ivt_hf import IVTConfig, IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    torch.manual_seed(0)
    config = IVTConfig.from_preset(preset)
    save_model_folder(IVTModel(config).eval(), IVTProcessor.from_config(config), work / preset)
    runtimes = exported(work / preset, work, args.threads)
    pixel_values = torch.rand(args.batch_size, 3, *config.image_size) * 2 - 1
    input_ids = torch.randint(1000, 20000, (4 * args.batch_size, args.text_length))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, args.text_length // 2 :] = 0
    images, texts = args.batch_size, input_ids.shape[0]
    model = runtimes[RUNTIMES[0]][0]
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(model.get_image_features(pixel_values), dim=-1).numpy()
        rows = {
            RUNTIMES[0]: [
                median_rate(lambda: model.get_image_features(pixel_values), images, args.repeats),
                median_rate(lambda: model.get_text_features(input_ids, attention_mask), texts, args.repeats),
                1.0,
            ]
        }
    pixels, ids, mask = pixel_values.numpy(), input_ids.numpy(), attention_mask.numpy()
    for name in RUNTIMES[1:]:
        encoder = runtimes[name][0]
        cosine = float((encoder.image_embeddings(pixels) * reference).sum(-1).min())
        rows[name] = [
            median_rate(lambda encoder=encoder: encoder.image_embeddings(pixels), images, args.repeats),
            median_rate(lambda encoder=encoder: encoder.text_embeddings(ids, mask), texts, args.repeats),
            cosine,
        ]
    if args.profile:
        profile(work / f"{preset}-int8", pixel_values.numpy(), args.threads)
    return rows


def recall_at_1(model_dir: Path, data_root: Path, work: Path, threads: int) -> dict[str, float]:
    """SynthPEDES test R@1 of the demo model under each runtime (its own export, the same evaluation code)."""
    from ivt_hf.data import load_benchmark
    from ivt_hf.evaluation.split_evaluation import evaluate_split

    found = [path for path in [data_root, *data_root.iterdir()] if (path / "synthpedes_meta.json").is_file()]
    if len(found) != 1:
        raise SystemExit(f"--data_root must hold one SynthPEDES folder, found {[str(path) for path in found]}")
    test = load_benchmark("synthpedes", found[0])["test"]
    runtimes = exported(model_dir, work, threads)
    return {name: evaluate_split(*runtimes[name], test, progress=False).metrics["R1"] for name in RUNTIMES}


def profile(folder: Path, pixel_values: np.ndarray, threads: int) -> None:
    """onnxruntime's own profile of the int8 image encoder: the share of time per op type (is attention, LayerNorm
    or GELU fused, and what dominates)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(folder.parent / "ort-profile")
    session = ort.InferenceSession(str(folder / "image_encoder.onnx"), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, {"pixel_values": pixel_values})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + event["dur"]
    total = sum(by_op.values())
    print("\nint8 image encoder, onnxruntime profile (3 runs): op type, share of kernel time")
    for op, duration in sorted(by_op.items(), key=lambda item: -item[1])[:12]:
        print(f"  {op:<24} {100 * duration / total:5.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo_model", type=Path, required=True, help="the 2,400-step demo model folder")
    parser.add_argument("--data_root", type=Path, required=True, help="that run's SynthPEDES (its data/ folder)")
    parser.add_argument("--work_dir", type=Path, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--text_length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny preset, one repeat: checks the script, no numbers")
    parser.add_argument("--profile", action="store_true", help="print onnxruntime's time per op type (int8 images)")
    parser.add_argument("--output", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = "tiny" if args.quick else "base"
    args.repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as temporary:
        work = args.work_dir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        rows = throughput(preset, work, args)
        r1 = recall_at_1(args.demo_model, args.data_root, work, args.threads)
    report(rows, r1, preset, args)


def report(rows: dict, r1: dict, preset: str, args) -> None:
    print(
        f"\nIVT {preset} preset (random weights), CPU, {args.threads} threads, batch {args.batch_size} images / "
        f"{4 * args.batch_size} captions of {args.text_length} tokens; R@1: {args.demo_model} on SynthPEDES test"
    )
    print(f"{'runtime':<18} {'images/s':>9} {'x torch':>8} {'texts/s':>9} {'x torch':>8} {'min cos':>8} {'R@1':>7}")
    base = rows[RUNTIMES[0]]
    for name in RUNTIMES:
        images, texts, cosine = rows[name]
        change = f" ({r1[name] - r1[RUNTIMES[0]]:+.2f})" if name != RUNTIMES[0] else ""
        print(
            f"{name:<18} {images:>9.2f} {images / base[0]:>7.2f}x {texts:>9.1f} {texts / base[1]:>7.2f}x "
            f"{cosine:>8.4f} {r1[name]:>7.2f}{change}"
        )
    target = rows[RUNTIMES[2]][0] / base[0]
    loss = r1[RUNTIMES[0]] - r1[RUNTIMES[2]]
    print(f"target int8 >= 2.5x torch images/s: {target:.2f}x; R@1 loss <= 0.5 points: {loss:.2f}")
    if args.output:
        table = {name: {"images_per_s": rows[name][0], "texts_per_s": rows[name][1], "R1": r1[name]} for name in rows}
        args.output.write_text(json.dumps({"preset": preset, "threads": args.threads, "rows": table}, indent=1))


if __name__ == "__main__":
    main()
