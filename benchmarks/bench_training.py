"""Training throughput (pairs/s) and peak memory of the demo model and the base preset on CPU.

    python benchmarks/bench_training.py [--steps 3] [--threads 2]

Each preset runs in its own subprocess (so peak RSS is its own): a real IVTTrainer step is forward of both
modalities on 3B pairs (MLA), BMM token dropping, CMPM, backward and an optimizer step. Inputs are random tensors of
the right shapes (data loading is not timed). demo: the model and step of `ivt demo`'s recipe (the tiny preset with
3 blocks, 128x64, 48 images = 144 pairs with one image per person, eager attention, texts in 3 length groups, fused
AdamW as `build_optimizer` makes it); base: ViT-B/16 at 384x128 stride 16 (the RSTPReid setting; SGD as the
reference), batch 4 images = 12 pairs, K = 4.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SETTINGS = {
    "demo": {
        "preset": "tiny",
        "overrides": {"num_hidden_layers": 3, "initializer_range": 0.05},
        "images": 48,
        "images_per_id": 1,
        "text_length": 48,
        "optim": "adamw_torch",
        "attn": "eager",
        "buckets": 3,
    },
    "base": {
        "preset": "base",
        "overrides": {},
        "images": 4,
        "images_per_id": 4,
        "text_length": 64,
        "optim": "sgd",
        "attn": None,
        "buckets": None,
    },
}


def worker(name: str, steps: int, threads: int) -> dict:
    import torch

    from ivt_hf import IVTConfig, IVTModel
    from ivt_hf.training import build_optimizer, cmpm_loss

    torch.set_num_threads(threads)
    setting = SETTINGS[name]
    config = IVTConfig.from_preset(setting["preset"], **setting["overrides"])
    model = IVTModel(config).train()
    if setting["attn"]:
        model.set_attn_implementation(setting["attn"])
    pairs = 3 * setting["images"]
    if setting["optim"] == "sgd":
        optimizer = build_optimizer(model, "sgd", lr=5e-3, weight_decay=1e-4)
    else:
        optimizer = build_optimizer(model, setting["optim"], lr=1e-3, weight_decay=0.01)
    pixel_values = torch.randn(pairs, 3, *config.image_size)
    input_ids = torch.randint(1000, 20000, (pairs, setting["text_length"]))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::3, setting["text_length"] // 3 :] = 0  # word-level texts are short
    attention_mask[1::3, setting["text_length"] // 2 :] = 0  # phrase-level texts are mid-length
    labels = torch.arange(pairs) // (3 * setting["images_per_id"])  # K images x 3 pairs per identity

    def step() -> None:
        output = model(
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask,
            text_length_buckets=setting["buckets"],
        )
        loss = cmpm_loss(output.image_embeds, output.text_embeds, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations, optimizer state)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "preset": name,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "pairs_per_step": pairs,
        "seconds_per_step": round(seconds, 3),
        "pairs_per_second": round(pairs / seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=list(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.threads)))
        return
    print(f"{'preset':<6} {'params':>8} {'pairs/step':>11} {'s/step':>8} {'pairs/s':>8} {'peak RSS':>9}")
    for name in SETTINGS:
        result = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--steps", str(args.steps), "--threads", str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{row['preset']:<6} {row['parameters_m']:>7}M {row['pairs_per_step']:>11} {row['seconds_per_step']:>8} "
            f"{row['pairs_per_second']:>8} {row['peak_rss_gib']:>7} GiB"
        )


if __name__ == "__main__":
    main()
