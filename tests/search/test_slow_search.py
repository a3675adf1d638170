"""Slow: search with a properly trained tiny model finds the described person in most cases.

Run with `.venv/bin/python -m pytest -m slow` (about 16 minutes on 2 CPU cores). The fast suite's fixture model trains
for under two minutes and reaches only about 7 % R@1 (its round-trip test asserts well above chance); this test
trains the demo recipe for 2,400 steps instead (`ivt demo --max_steps 2400`, about 15 minutes here) and checks the
gallery index round trip on held-out people: index the test split's image files, save, load without pickle, search
every test caption.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from transformers import AutoModel, AutoProcessor

from ivt_hf.data import load_benchmark_with_report
from ivt_hf.demo import run_demo
from ivt_hf.search import GalleryIndex


@pytest.mark.slow
def test_search_top_hit_is_the_described_person_in_most_cases(tmp_path, monkeypatch):
    summary = run_demo(tmp_path / "demo", max_steps=2400, time_budget_minutes=24 * 60, threads=2)  # never cut
    model = AutoModel.from_pretrained(summary["paths"]["model"]).eval()
    processor = AutoProcessor.from_pretrained(summary["paths"]["model"])
    data_root = tmp_path / "demo" / "data"
    folder = next(path for path in data_root.iterdir() if (path / "synthpedes_meta.json").is_file())
    # the generated folder has the CUHK-PEDES layout: read it as a user's copy would be read
    test = load_benchmark_with_report("cuhk-pedes", folder, verify_images=False)[0]["test"]
    people = sorted(set(test["person_id"]))
    assert len(people) == 200

    num_captions = sum(len(captions) for captions in test["captions"])

    def round_trip(keep: set[int], name: str) -> float:
        rows = [row for row, pid in enumerate(test["person_id"]) if pid in keep]
        paths = [str(folder / test["image_path"][row]) for row in rows]
        person_of = {path: test["person_id"][row] for row, path in zip(rows, paths)}
        GalleryIndex.build(model, processor, paths, progress=False).save(tmp_path / name)
        with monkeypatch.context() as patch:  # the index must load without unpickling anything
            for module, attribute in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
                patch.setattr(module, attribute, lambda *args, **kwargs: pytest.fail("an index must not unpickle"))
            index = GalleryIndex.load(tmp_path / name)
        captions = [caption for row in rows for caption in test["captions"][row]]
        owners = [test["person_id"][row] for row in rows for _ in test["captions"][row]]
        hits = index.search(captions, model, processor, k=1)
        return sum(person_of[row[0].path] == pid for row, pid in zip(hits, owners)) / len(captions)

    everyone = round_trip(set(people), "index_200")
    half = round_trip(set(people[::2]), "index_100")
    print(f"top hit is the described person: {everyone:.1%} over 200 people, {half:.1%} over 100 (every second id)")
    # the exact index ranks like the evaluation: its top-1 rate over the whole split is the demo's R@1 (up to a
    # near-tie or two flipped by encoding in other batches)
    assert everyone == pytest.approx(summary["metrics"]["R1"] / 100, abs=2 / num_captions)
    assert everyone > 60 / 200  # 60 times chance (measured 51.3 % on the 2-core machine, 0.5 % chance)
    assert half > 0.5  # most cases, on a 100-person gallery
