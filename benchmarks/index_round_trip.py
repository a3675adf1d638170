"""How often is the top search hit the described person? A gallery index round trip with a trained model.

Writes the images of one SynthPEDES split to a folder (file names carry the person id, as a user's own gallery
would not), builds a `GalleryIndex` from that folder with the model, saves it, loads it back, searches every caption
of the split and counts how often the top hit (and any of the top 5) shows the described person. Exact search ranks
like the evaluation, so the top-1 rate must equal the split's R@1 (computed with `retrieval_metrics` on the
model's similarity matrix, as the recipe sweep does); the script prints both.

    python benchmarks/index_round_trip.py --model outputs/demo/model --data_root outputs/demo/data [--split test]

`--data_root` is a generated SynthPEDES folder in the CUHK-PEDES layout (what `ivt demo` writes under
`outputs/demo/data`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data_root", type=Path, required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    import torch
    from demo_recipe_sweep import evaluate, read_raw
    from transformers import AutoModel, AutoProcessor

    from ivt_hf.retrieval import GalleryIndex

    torch.set_num_threads(2)
    model = AutoModel.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    split = read_raw(args.data_root)[args.split]
    captions = [caption for captions in split["captions"] for caption in captions]
    truth = [f"id{pid:05d}_" for captions, pid in zip(split["captions"], split["person_id"]) for _ in captions]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gallery"
        folder.mkdir()
        for row, (image, pid) in enumerate(zip(split["image"], split["person_id"])):
            image.save(folder / f"id{pid:05d}_{row:05d}.png")
        GalleryIndex.build(model, processor, folder).save(Path(tmp) / "index")
        index = GalleryIndex.load(Path(tmp) / "index")
        hits = index.search(captions, model, processor, k=5)
    top1 = sum(row[0].path.startswith(person) for row, person in zip(hits, truth)) / len(captions)
    top5 = sum(any(hit.path.startswith(person) for hit in row) for row, person in zip(hits, truth)) / len(captions)
    r1 = evaluate(model, processor, split, torch.device("cpu"))["R1"]
    print(f"model {args.model}, {args.split} split: {len(index)} images, {len(captions)} captions, "
          f"{len(set(split['person_id']))} people (chance {100 / len(set(split['person_id'])):.1f} %)")  # fmt: skip
    print(f"index round trip: top hit is the described person for {100 * top1:.2f} % of captions, "
          f"one of the top 5 for {100 * top5:.2f} %; R@1 of the split {r1:.2f} %")  # fmt: skip


if __name__ == "__main__":
    main()
