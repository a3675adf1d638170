"""Image and text encoding throughput of the full-size IVT model on CPU, eval mode: sdpa (ours, default) vs eager,
then one row per encoding precision (`--dtype` of `ivt evaluate` / `ivt index build`) next to float32.

    python benchmarks/bench_encoding.py [--stride 16] [--batch_size 8] [--repeats 3] [--threads 2]
    python benchmarks/bench_encoding.py --evaluate_model runs/demo2400/model --data_root outputs/demo/data

With `--evaluate_model`, each precision also evaluates that model on the SynthPEDES test split (the R@1 change).

Both sides run in this one process on the same random weights and inputs, alternating, after one warm-up batch each.
"eager" is the reference implementation's compute pattern (explicit softmax(QK^T)V, fp32). Throughput is the median
over repeats. The reference code measured about 2.8 images/s at stride 16, batch 8, fp32 on this 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ivt_hf import IVTConfig, IVTModel


def time_call(function, repeats: int) -> list[float]:
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return durations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--text_length", type=int, default=64, help="tokens per caption (padded batch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"])
    parser.add_argument("--evaluate_model", help="a SynthPEDES model folder: R@1 on the test split per precision")
    parser.add_argument("--data_root", help="where that model's SynthPEDES is (the demo's outputs/demo/data)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = IVTConfig(patch_stride=args.stride)
    torch.manual_seed(0)
    models = {}
    for implementation in ("sdpa", "eager"):
        models[implementation] = IVTModel._from_config(
            IVTConfig(**config.to_dict()), attn_implementation=implementation
        )
        models[implementation].eval()
    models["eager"].load_state_dict(models["sdpa"].state_dict())

    pixel_values = torch.randn(args.batch_size, 3, *config.image_size)
    input_ids = torch.randint(1000, 20000, (args.batch_size * 4, args.text_length))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, args.text_length // 2 :] = 0  # half the captions padded, as in a real batch

    results = {}
    with torch.inference_mode():
        outputs = {name: model.get_image_features(pixel_values) for name, model in models.items()}  # warm-up
        max_difference = (outputs["sdpa"] - outputs["eager"]).abs().max().item()
        for model in models.values():
            model.get_text_features(input_ids, attention_mask)
        for name, model in models.items():
            image_times = time_call(lambda model=model: model.get_image_features(pixel_values), args.repeats)
            text_times = time_call(lambda model=model: model.get_text_features(input_ids, attention_mask), args.repeats)
            results[name] = (
                args.batch_size / statistics.median(image_times),
                input_ids.shape[0] / statistics.median(text_times),
            )

    print(
        f"IVT ViT-B/16, {sum(p.numel() for p in models['sdpa'].parameters()) / 1e6:.1f}M params, image "
        f"{tuple(config.image_size)}, stride {args.stride} ({config.num_patches} patches), fp32, "
        f"{args.threads} threads, batch {args.batch_size} images / {input_ids.shape[0]} captions of {args.text_length}"
    )
    print(f"{'attention':<10} {'images/s':>10} {'captions/s':>12}")
    for name, (images_per_second, captions_per_second) in results.items():
        label = name + (" (ours)" if name == "sdpa" else " (reference pattern)")
        print(f"{label:<26} {images_per_second:>8.2f} {captions_per_second:>12.1f}")
    speedup = results["sdpa"][0] / results["eager"][0]
    print(f"image speed-up sdpa / eager: {speedup:.2f}x; max |sdpa - eager| image embedding: {max_difference:.2e}")
    compare_dtypes(models["sdpa"], pixel_values, input_ids, attention_mask, args)


def compare_dtypes(model, pixel_values, input_ids, attention_mask, args) -> None:
    """Images/s and captions/s per precision on the same weights and inputs, and (optionally) R@1 on SynthPEDES."""
    from ivt_hf.evaluation.encoding import prepare_for_inference

    dtypes = [dtype for dtype in args.dtypes if dtype != "float16" or torch.cuda.is_available()]
    rows = {}
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(model.get_image_features(pixel_values).float(), dim=-1)
        for dtype in dtypes:
            prepared = prepare_for_inference(model, dtype)
            embeddings = torch.nn.functional.normalize(prepared.get_image_features(pixel_values).float(), dim=-1)
            prepared.get_text_features(input_ids, attention_mask)  # warm-up
            image_times = time_call(lambda prepared=prepared: prepared.get_image_features(pixel_values), args.repeats)
            text_times = time_call(
                lambda prepared=prepared: prepared.get_text_features(input_ids, attention_mask), args.repeats
            )
            rows[dtype] = [
                args.batch_size / statistics.median(image_times),
                input_ids.shape[0] / statistics.median(text_times),
                float((embeddings * reference).sum(-1).min()),
            ]
            del prepared
    if args.evaluate_model:
        r1 = evaluate_dtypes(args.evaluate_model, args.data_root, dtypes)
        for dtype in dtypes:
            rows[dtype].append(r1[dtype])
    print(
        "\nprecision  images/s  x fp32  captions/s  x fp32  min cosine to fp32 (images)"
        + ("  R@1 SynthPEDES test  change" if args.evaluate_model else "")
    )
    base = rows["float32"]
    for dtype, row in rows.items():
        line = (
            f"{dtype:<10} {row[0]:>8.2f} {row[0] / base[0]:>6.2f}x {row[1]:>10.1f} {row[1] / base[1]:>6.2f}x "
            f"{row[2]:>10.4f}"
        )
        if args.evaluate_model:
            line += f"  {row[3]:>18.2f}  {row[3] - base[3]:+.2f}"
        print(line)


def evaluate_dtypes(model_dir: str, data_root: str | None, dtypes: list[str]) -> dict[str, float]:
    from ivt_hf.data import load_benchmark
    from ivt_hf.evaluation.encoding import prepare_for_inference
    from ivt_hf.evaluation.split_evaluation import evaluate_split
    from ivt_hf.hub.folder import load_model_and_processor

    model, processor = load_model_and_processor(model_dir)
    folder = next((path for path in Path(data_root).iterdir() if (path / "synthpedes_meta.json").is_file()), None)
    test = load_benchmark("synthpedes", folder or data_root)["test"]
    return {
        dtype: evaluate_split(prepare_for_inference(model, dtype), processor, test).metrics["R1"] for dtype in dtypes
    }


if __name__ == "__main__":
    main()
