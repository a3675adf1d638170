"""Preparing one training batch: the package's MLA collator vs a straightforward reference, same output.

    .venv/bin/python experiments/bench_train_batch.py --data_root outputs/demo/data [--batch 48] [--batches 20]

A batch of B images becomes 3B augmented views and 3B texts (MLA). The reference, written out below, does what the
spec says in the plainest way: PIL image -> array -> `np.pad` with zeros -> random crop -> flip -> ToTensor-style
float conversion on the permuted view -> normalise -> random erasing (the package's own erasing step, which this
change did not touch); text tokenised once to measure the lengths (for the truncation warning) and again to pad.
The package (`MLACollator` over `TrainImageDataset(cache_images=True)`) draws the same random numbers in the same
order, so the script first checks that both give identical tensors, then times each over the same batches, one
process, 2 threads.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_recipe_sweep import read_raw  # noqa: E402

from ivt_hf import IVTProcessor  # noqa: E402
from ivt_hf.training.finetuning.batching import MLACollator, TrainImageDataset  # noqa: E402
from ivt_hf.training.transforms import TrainTransform, _as_generator, _randint  # noqa: E402


class ReferenceCollator:
    """The plain version: PIL in, `np.pad`, a float copy of the permuted view, two tokeniser calls."""

    def __init__(self, collator: MLACollator):
        self.collator, self.transform = collator, collator.transform

    def view(self, image, seed: int) -> torch.Tensor:
        transform, generator = self.transform, _as_generator(seed)
        pixels = np.asarray(image.convert("RGB"))  # already at the model's size: no resize
        pad = transform.padding
        padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)))
        top, left = _randint(2 * pad, generator), _randint(2 * pad, generator)
        pixels = padded[top : top + pixels.shape[0], left : left + pixels.shape[1]]
        if torch.rand((), generator=generator).item() < transform.flip_p:
            pixels = pixels[:, ::-1]
        tensor = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).to(torch.float32)
        tensor = (tensor / 255.0 - transform.mean) / transform.std
        if torch.rand((), generator=generator).item() < transform.erase_p:
            transform._erase_in_place(tensor, generator)
        return tensor

    def __call__(self, samples):
        views, texts, labels = [], [], []
        for sample in samples:
            rng = random.Random(repr((self.collator.seed, sample["key"])))
            for text in self.collator.texts_for(sample["captions"], rng):
                views.append(self.view(sample["pil"], rng.getrandbits(62)))
                texts.append(text)
                labels.append(sample["person_id"])
        tokenizer = self.collator.processor.tokenizer
        _lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
        encoded = tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.collator.max_length,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        return {
            "pixel_values": torch.stack(views),
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": torch.tensor(labels),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_root", type=Path, required=True, help="a generated SynthPEDES folder")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)

    train = read_raw(args.data_root)["train"]
    height, width = np.asarray(train["image"][0]).shape[:2]
    dataset = TrainImageDataset(train, cache_images=True)
    collator = MLACollator(
        IVTProcessor(), TrainTransform(image_size=(height, width), padding=3), seed=0, max_length=128
    )
    reference = ReferenceCollator(collator)
    order = np.random.default_rng(0).permutation(len(dataset))
    batches = []
    for number in range(args.batches):
        indices = order[number * args.batch : (number + 1) * args.batch]
        batches.append(
            [dataset[(int(i), (0, number, p))] | {"pil": train["image"][int(i)]} for p, i in enumerate(indices)]
        )

    for key, value in reference(batches[0]).items():
        assert torch.equal(value, collator(batches[0])[key]), f"{key} differs from the reference"
    print(f"same tensors: {3 * args.batch} views {tuple(collator(batches[0])['pixel_values'].shape[1:])} and texts")
    for name, function in (("reference (np.pad, two tokeniser calls)", reference), ("ivt_hf MLACollator", collator)):
        function(batches[0])
        start = time.perf_counter()
        for batch in batches:
            function(batch)
        print(f"{name:<42} {(time.perf_counter() - start) / len(batches):.3f} s per {args.batch}-image batch")


if __name__ == "__main__":
    main()
