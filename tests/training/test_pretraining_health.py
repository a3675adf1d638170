"""`ivt_hf.training.pretraining.health`: how alike a batch's CLS vectors are, and the collapse warning of
`ivt pretrain` (an encoder whose ITC sits at chance because every CLS points the same way)."""

from __future__ import annotations

import io
import json
import logging
import math
import random

import pytest
import torch
from PIL import Image

from ivt_hf.data import write_webdataset_shards
from ivt_hf.training.pretraining.health import alikeness, collapse_warning

COLLAPSED = {"step": 40, "loss_itc": 2.774, "image_alike": 0.999, "text_alike": 0.9998}


def test_alikeness_is_the_mean_cosine_between_different_rows():
    rows = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])  # cosines 0, 1/sqrt(2), 1/sqrt(2)
    assert alikeness(rows) == pytest.approx(2 / 3 / math.sqrt(2), abs=1e-7)
    assert alikeness(torch.tensor([[1.0, 2.0], [2.0, 4.0]])) == pytest.approx(1.0, abs=1e-7)
    with pytest.raises(ValueError, match="at least 2 rows, got 1"):
        alikeness(torch.ones(1, 4))


def test_the_warning_names_the_measurements_and_the_way_out():
    warning = collapse_warning(COLLAPSED, itc_batch=16)
    assert warning.startswith("step 40: the encoder looks collapsed: ITC 2.774 is chance (ln 16 = 2.773)")
    assert "between images 0.999, between captions 1.000" in warning
    assert "--initializer_range" in warning


@pytest.mark.parametrize(
    "change",
    [
        {"loss_itc": 2.30},  # ITC below chance: it learns, however alike the vectors
        {"image_alike": 0.94},  # images still apart: a fresh start
        {"text_alike": 0.95},
    ],
)
def test_no_warning_unless_itc_is_at_chance_and_both_sides_are_alike(change):
    assert collapse_warning(COLLAPSED | change, itc_batch=16) is None
    assert collapse_warning(COLLAPSED, itc_batch=32) is None  # ln 32 = 3.47: 2.774 is far below that chance


def _icon_like_pairs(count: int, seed: int = 0) -> list[tuple[str, bytes, str]]:
    """Flat-colour images on white captioned from a few words, as icon sets are."""
    rng = random.Random(seed)
    words = "folder document edit copy network wireless calculator mail print audio video".split()
    pairs = []
    for index in range(count):
        image = Image.new("RGB", (32, 32), "white")
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (8, 8, 24, 24))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        caption = f"{rng.choice(words)} {rng.choice(words)}, an application icon"
        pairs.append((f"{index:06d}", buffer.getvalue(), caption))
    return pairs


def _pretrain(tmp_path, name: str, initializer_range: float) -> list[dict]:
    from ivt_hf.training.pretraining import parse_pretraining_args, pretrain

    argv = f"--dataset_name {tmp_path / 'pairs'} --output_dir {tmp_path / name} --model_preset tiny".split()
    argv += "--num_hidden_layers 3 --max_steps 30 --per_device_train_batch_size 16 --learning_rate 1e-3".split()
    argv += "--warmup_steps 2 --logging_steps 15 --save_steps 100 --seed 0 --use_cpu true".split()
    argv += ["--initializer_range", str(initializer_range), "--dataloader_num_workers", "0"]
    pretrain(*parse_pretraining_args(argv))
    return [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]


def test_pretraining_logs_how_alike_the_cls_vectors_are_and_warns_once_when_they_collapse(tmp_path, caplog):
    """The tiny preset's default initialisation (0.02) on icon-like pairs at a high learning rate: every caption's
    CLS starts as the same vector and the images follow within 30 steps."""
    write_webdataset_shards(_icon_like_pairs(96), tmp_path / "pairs", 32)
    with caplog.at_level(logging.WARNING, logger="ivt_hf.training.pretraining.loop"):
        collapsed = _pretrain(tmp_path, "small-init", 0.02)
    warnings = [record.message for record in caplog.records if "looks collapsed" in record.message]
    assert len(warnings) == 1 and warnings[0].startswith(f"step {collapsed[-1]['step']}: ")
    last = collapsed[-1]
    assert last["image_alike"] > 0.99 and last["text_alike"] > 0.99
    assert abs(last["loss_itc"] - math.log(16)) < 0.02 * math.log(16)
