"""A mixture of pair sources (`ivt pretrain --train_data A B --mix_weights 0.7 0.3`, `ivt_hf.data.mixture`) with two
real processes: WebDataset shards mixed with a corpus as published (LUPerson-MLLM), a run killed for real after a
checkpoint and resumed under the other launcher ends with the uninterrupted run's weights and pairs, bit for bit. As
light as the single-stream test of test_multiprocess_pretraining.py: the micro preset at 32x16, five steps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.corpus_fixtures import EXPECTED, jpeg_bytes, make_luperson_mllm
from helpers.launchers import ENV, descendants, kill_hard, launcher, process_is_running, wait_for_files
from safetensors.torch import load_file

from ivt_hf.data.pair_writing import write_webdataset_shards

ROOT = Path(__file__).resolve().parents[2]
HANG_WORKER = ROOT / "tests" / "helpers" / "pretrain_hang_worker.py"
STEPS, SAVE_AT, HANG_AT = 5, 3, 4


def _flags(sources: list[Path], output: Path, *extra: str) -> list[str]:
    return [
        *"pretrain --train_data".split(),
        *map(str, sources),
        *"--mix_weights 0.7 0.3".split(),
        *(
            f"--output_dir {output} --model_preset micro --image_height 32 --image_width 16 --max_steps {STEPS} "
            f"--per_device_train_batch_size 4 --logging_steps 1 --save_steps {SAVE_AT} --shuffle_buffer_size 4 "
            "--dataloader_num_workers 0 --log_pair_keys --seed 0 --learning_rate 1e-3"
        ).split(),
        *extra,
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=900, cwd=ROOT)


def _pair_records(output: Path) -> list[list[dict]]:
    return [
        [json.loads(line) for line in (output / f"pair_keys_rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    ]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("mixture")
    pairs = [(f"{n:04d}", jpeg_bytes(n), f"A person in coat number {n}, with a bag.") for n in range(24)]
    write_webdataset_shards(pairs, root / "shards", pairs_per_shard=6)
    return [root / "shards", make_luperson_mllm(root / "luperson")]


def test_a_mixture_killed_after_a_checkpoint_resumes_to_the_same_weights_and_pairs(sources, tmp_path):
    reference = tmp_path / "reference"
    result = _run([*launcher("torchrun"), "-m", "ivt_hf", *_flags(sources, reference)])
    assert result.returncode == 0, result.stderr[-4000:]
    records = _pair_records(reference)
    drawn = [key.split(":", 1) for rank in records for record in rank for _, key in record["pairs"]]
    assert len(drawn) == 2 * STEPS * 4 and {source for source, _ in drawn} == {"0", "1"}  # both sources drawn
    corpus_pairs = {key for source, key in drawn if source == "1"}
    assert corpus_pairs <= set(EXPECTED["luperson_mllm"]["pairs"])
    results = json.loads((reference / "pretrain_results.json").read_text())
    assert [report["corpus"] for report in results["data_cleaning"]] == ["luperson_mllm"]

    output = tmp_path / "interrupted"
    hung = tmp_path / "hung"
    command = [*launcher("torchrun"), str(HANG_WORKER), str(HANG_AT), str(hung), *_flags(sources, output)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, start_new_session=True
    )
    wait_for_files([hung / f"hung_rank{rank}.json" for rank in (0, 1)], process)
    everything = [*descendants(process.pid), process.pid]
    kill_hard(everything)
    process.wait()
    assert not any(process_is_running(pid) for pid in everything)
    assert sorted(path.name for path in output.glob("checkpoint-*")) == [f"checkpoint-{SAVE_AT}"]
    for rank in (0, 1):  # the checkpoint holds the mixture's position: its draws and each source's own state
        stream = json.loads((output / f"checkpoint-{SAVE_AT}" / f"shuffle_rank{rank}.json").read_text())["stream"]
        assert stream["format"] == "ivt_hf.PairMixture" and stream["weights"] == [0.7, 0.3]
        assert stream["draws"] > 0 and [each["route"] for each in stream["streams"]] == ["webdataset", "rows"]

    resumed = _run(
        [*launcher("accelerate"), "-m", "ivt_hf", *_flags(sources, output), "--resume_from_checkpoint", "latest"]
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    expected, weights = load_file(reference / "model.safetensors"), load_file(output / "model.safetensors")
    assert expected.keys() == weights.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, weights[name]), name
    assert _pair_records(output) == records  # the same pairs, from the same sources, at every step
