"""Shared test helpers: the fixture folder and a tiny IVT config (the `micro` preset) that runs in milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

torch.set_num_threads(2)


@pytest.fixture
def tiny_config():
    """The `micro` preset: the authors' fixture model's width (hidden 32, 2 layers, 2 heads) at 64x32."""
    from ivt_hf import IVTConfig

    return IVTConfig.from_preset("micro")


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@dataclass
class TrainedRun:
    model_dir: Path
    data_root: Path
    data: object  # datasets.DatasetDict of the SynthPEDES it was trained on
    train_results: dict


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory) -> TrainedRun:
    """Train the tiny preset with the demo's from-scratch settings (3 blocks, init std 0.05, one image per person in
    a batch, text length groups, eager attention) for 400 steps (under two minutes) on a small SynthPEDES (300 train /
    20 val / 100 test identities at 64x32) through the real entry point, once per test session; several tests use
    the model."""
    from ivt_hf.data import load_benchmark

    root = tmp_path_factory.mktemp("trained")
    data_root, run_dir = root / "synth", root / "run"
    split_ids = {"train": 300, "validation": 20, "test": 100}
    data = load_benchmark("synthpedes", data_root, split_ids=split_ids, image_size=(64, 32), seed=1)
    args = [
        *f"--dataset_name synthpedes --data_root {data_root} --output_dir {run_dir} --model_preset".split(),
        *"tiny --image_height 64 --image_width 32 --num_hidden_layers 3 --initializer_range 0.05".split(),
        *"--images_per_id 1 --text_length_buckets 3 --attn_implementation eager --synth_train_ids 300".split(),
        *"--synth_validation_ids 20 --synth_test_ids 100 --synth_seed 1 --per_device_train_batch_size".split(),
        *"32 --use_cpu --report_to none --optim adamw_torch --learning_rate 1e-3 --weight_decay 0.01".split(),
        *"--warmup_steps 60 --lr_scheduler_type cosine --max_steps 400 --eval_strategy no".split(),
        *"--disable_tqdm true --cache_train_images true --seed 0".split(),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "scripts" / "train.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(run_dir, data_root, data, json.loads((run_dir / "train_results.json").read_text()))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A factory of real small file systems: `small_tmpfs("300k")` mounts a tmpfs of that size (`mount -t tmpfs -o
    size=...`) and returns its folder; each is unmounted after the test (tests/helpers/tmpfs.py; `fill(disk)` makes
    it full). The test is skipped, with the reason, where mount is not permitted."""
    from contextlib import ExitStack
    from itertools import count

    from helpers.tmpfs import MountNotPermitted, mounted_tmpfs

    numbers = count()
    with ExitStack() as mounts:

        def mount(size: str = "300k") -> Path:
            try:
                return mounts.enter_context(mounted_tmpfs(tmp_path / f"tmpfs{next(numbers)}", size))
            except MountNotPermitted as error:
                pytest.skip(f"a real small file system is needed: {error}")

        yield mount
