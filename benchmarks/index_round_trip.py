"""How often is the top search hit the described person? A gallery index round trip with a trained model.

Writes the images of one SynthPEDES split to a folder (file names carry the person id, as a user's own gallery
would not), builds a `GalleryIndex` from that folder with the model, saves it, loads it back, searches every caption
of the split and counts how often the top hit (and any of the top 5) shows the described person. Exact search ranks
like the evaluation, so the top-1 rate must equal the split's R@1 from `ivt_hf.evaluation.evaluate_split` on the
same split; the script prints both. `--split` picks another split (default `test`).

    .venv/bin/python benchmarks/index_round_trip.py --model outputs/demo/model --data_root outputs/demo/data

`--data_root` is a generated SynthPEDES folder (the one holding `synthpedes_meta.json`) or a folder above it, such
as the `outputs/demo/data` that `ivt demo` writes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def synthpedes_folder(root: Path) -> Path:
    """`root` itself if it is a generated SynthPEDES folder, else the first one below it."""
    from ivt_hf.data.synthpedes import META_FILE

    found = [root] if (root / META_FILE).is_file() else sorted(path.parent for path in root.glob(f"*/{META_FILE}"))
    if not found:
        raise SystemExit(f"error: no {META_FILE} in {root} or its sub-folders: pass a generated SynthPEDES folder")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a from_pretrained folder")
    parser.add_argument("--data_root", type=Path, required=True)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoProcessor

    import ivt_hf  # noqa: F401  (registers IVT with the Auto classes)
    from ivt_hf.data import load_benchmark
    from ivt_hf.evaluation import evaluate_split
    from ivt_hf.search import GalleryIndex

    torch.set_num_threads(2)
    model = AutoModel.from_pretrained(args.model).eval()
    processor = AutoProcessor.from_pretrained(args.model)
    split = load_benchmark("synthpedes", synthpedes_folder(args.data_root), verify_images=False)[args.split]
    person_ids = list(split["person_id"])
    captions_per_image = list(split["captions"])
    captions = [caption for captions in captions_per_image for caption in captions]
    truth = [f"id{pid:05d}_" for captions, pid in zip(captions_per_image, person_ids) for _ in captions]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "gallery"
        folder.mkdir()
        for row, (image, pid) in enumerate(zip(split["image"], person_ids)):
            image.save(folder / f"id{pid:05d}_{row:05d}.png")
        GalleryIndex.build(model, processor, folder).save(Path(tmp) / "index")
        index = GalleryIndex.load(Path(tmp) / "index")
        hits = index.search(captions, model, processor, k=5)
    top1 = sum(row[0].path.startswith(person) for row, person in zip(hits, truth)) / len(captions)
    top5 = sum(any(hit.path.startswith(person) for hit in row) for row, person in zip(hits, truth)) / len(captions)
    r1 = evaluate_split(model, processor, split, progress=False).metrics["R1"]
    people = len(set(person_ids))
    print(
        f"model {args.model}, {args.split} split: {len(index)} images, {len(captions)} captions, "
        f"{people} people (chance {100 / people:.1f} %)"
    )
    print(
        f"index round trip: top hit is the described person for {100 * top1:.2f} % of captions, "
        f"one of the top 5 for {100 * top5:.2f} %"
    )
    print(f"evaluate_split:   R@1 of the split {r1:.2f} %")


if __name__ == "__main__":
    main()
