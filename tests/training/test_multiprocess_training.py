"""Training with several real processes (gloo on CPU), from an empty data folder, over several epochs, killed and
resumed: what one process cannot show (accelerate wraps the batch sampler only when there are several)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.launchers import ENV, descendants, kill_hard, launcher, process_is_running, wait_for_files
from safetensors.torch import load_file

from ivt_hf.training.finetuning.sampler import IdentityBatchSampler

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "helpers" / "epoch_worker.py"
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"
SPLIT_IDS = {"train": 24, "validation": 6, "test": 6}
SEED, IMAGES_PER_ID, IMAGES_PER_BATCH = 3, 2, 8


def _flags(data_root: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        *f"--dataset_name synthpedes --data_dir {data_root} --output_dir {output_dir}".split(),
        *f"--synth_train_ids {SPLIT_IDS['train']} --synth_validation_ids {SPLIT_IDS['validation']}".split(),
        *f"--synth_test_ids {SPLIT_IDS['test']} --model_preset tiny --image_height 64 --image_width 32".split(),
        *f"--num_hidden_layers 2 --per_device_train_batch_size {IMAGES_PER_BATCH} --images_per_id".split(),
        *f"{IMAGES_PER_ID} --use_cpu --report_to none --optim adamw_torch --learning_rate 1e-3".split(),
        *f"--disable_tqdm true --seed {SEED} --eval_strategy no".split(),
        *extra,
    ]


def _global_schedule(data_root: Path, epoch: int) -> list[list[int]]:
    """Every process's batches of one epoch, step-major and rank-minor, as one process with the same settings
    computes them."""
    from ivt_hf.data import load_benchmark

    train = load_benchmark("synthpedes", data_root, split_ids=SPLIT_IDS, image_size=(64, 32))["train"]
    sampler = IdentityBatchSampler(
        train["person_id"],
        images_per_id=IMAGES_PER_ID,
        ids_per_batch=IMAGES_PER_BATCH // IMAGES_PER_ID,
        num_replicas=2,
        rank=0,
        seed=SEED,
        yield_all_replicas=True,
    )
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("launcher_name", ["torchrun", pytest.param("accelerate", marks=pytest.mark.compat)])
def test_every_epoch_is_a_new_epoch_from_an_empty_folder(tmp_path, launcher_name):
    """Two processes, three epochs, an empty `--data_dir`: SynthPEDES is generated once (the processes do not
    race); every epoch runs its own identity schedule (the one a single process computes for that epoch), its own
    augmentation keys and text picks, with disjoint identities across the processes at every step."""
    data_root = tmp_path / "empty"
    command = [
        *launcher(launcher_name),
        str(WORKER),
        str(tmp_path / "batches"),
        *_flags(data_root, tmp_path / "run", "--num_train_epochs", "3", "--save_strategy", "no"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]

    generated = sorted(path.name for path in data_root.iterdir())
    assert len([name for name in generated if not name.endswith(".lock")]) == 1, generated  # no staging left
    records = [json.loads((tmp_path / "batches" / f"batches_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(record["world_size"], record["rank"]) for record in records] == [(2, 0), (2, 1)]

    schedules = [_global_schedule(data_root, epoch) for epoch in range(3)]
    assert schedules[0] != schedules[1] != schedules[2]  # the comparison below can tell epochs apart
    steps = len(schedules[0]) // 2
    assert records[0]["global_step"] == 3 * steps
    for rank, record in enumerate(records):
        assert len(record["batches"]) == 3 * steps
        for number, batch in enumerate(record["batches"]):
            epoch, step = divmod(number, steps)
            assert {(row[1], row[2]) for row in batch} == {(epoch, 2 * step + rank)}, (rank, number)  # the keys
            assert [row[0] for row in batch] == schedules[epoch][2 * step + rank], (rank, number)
    for number in range(3 * steps):
        identities = [{row[4] for row in record["batches"][number]} for record in records]
        assert not identities[0] & identities[1], number
    # one initialisation for both processes, then each its own random stream (dropout, drop-path, BMM's drops)
    assert records[0]["start_checksum"] == records[1]["start_checksum"]
    assert records[0]["first_step_rng"] != records[1]["first_step_rng"]
    seen = {row[0] for record in records for batch in record["batches"] for row in batch}
    first_epoch = {row[0] for record in records for batch in record["batches"][:steps] for row in batch}
    assert seen > first_epoch  # later epochs reach images the first epoch left out


def test_killed_mid_epoch_two_processes_resume_the_same_batches_and_weights(tmp_path):
    """Two processes killed for real (the workers themselves, confirmed dead) one step after a checkpoint that lies
    inside the second epoch; resumed with `--resume_from_checkpoint latest`: the rest of that epoch has exactly the
    batches (dataset indices AND augmentation / text keys of epoch 1) of the run that was never killed, and the final
    weights are the same. (Before the fix the resumed part of epoch 1 replayed epoch 0's schedule and keys.)"""
    data_root = tmp_path / "data"
    steps_per_epoch = len(_global_schedule(data_root, 0)) // 2  # generates the data once, before both runs
    save_steps, max_steps = steps_per_epoch + steps_per_epoch // 2, 2 * steps_per_epoch + 2
    assert steps_per_epoch < save_steps < max_steps and save_steps % steps_per_epoch
    schedule = ["--max_steps", str(max_steps), "--save_steps", str(save_steps), "--logging_steps", "1"]

    def launch(out: Path, output_dir: Path, *extra: str, env=ENV) -> subprocess.Popen:
        command = [*launcher("torchrun"), str(WORKER), str(out), *_flags(data_root, output_dir, *schedule, *extra)]
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )

    straight = launch(tmp_path / "straight_batches", tmp_path / "straight")
    assert straight.wait(timeout=900) == 0, straight.stderr.read()[-4000:]

    killed_dir = tmp_path / "killed"
    process = launch(tmp_path / "killed_batches", killed_dir, env={**ENV, "IVT_TEST_HANG_AT_STEP": str(save_steps + 1)})
    hung = [tmp_path / "killed_batches" / f"hung_rank{rank}.json" for rank in (0, 1)]
    wait_for_files(hung, process)
    workers = [json.loads(path.read_text())["pid"] for path in hung]
    assert set(workers) <= set(descendants(process.pid))  # the training processes, below the launcher
    kill_hard([*descendants(process.pid), process.pid])  # workers (in their own sessions) and launcher
    process.wait()
    assert not any(process_is_running(pid) for pid in workers)
    assert not (killed_dir / "model.safetensors").exists() and not (killed_dir / "train_results.json").exists()
    assert sorted(path.name for path in killed_dir.glob("checkpoint-*")) == [f"checkpoint-{save_steps}"]
    checkpoint = killed_dir / f"checkpoint-{save_steps}"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == save_steps and int(state["epoch"]) == 1  # inside the second epoch
    assert {path.name for path in checkpoint.glob("rng_state*.pth")} >= {"rng_state_0.pth", "rng_state_1.pth"}

    resumed = launch(tmp_path / "resumed_batches", killed_dir, "--resume_from_checkpoint", "latest")
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()[-4000:]
    remaining = max_steps - save_steps
    for rank in (0, 1):
        straight_batches = json.loads((tmp_path / "straight_batches" / f"batches_rank{rank}.json").read_text())
        resumed_batches = json.loads((tmp_path / "resumed_batches" / f"batches_rank{rank}.json").read_text())
        expected = straight_batches["batches"][save_steps:max_steps]
        assert resumed_batches["batches"][:remaining] == expected, rank
        assert {row[1] for batch in expected[: 2 * steps_per_epoch - save_steps] for row in batch} == {1}
    final_straight = load_file(tmp_path / "straight" / "model.safetensors")
    final_resumed = load_file(killed_dir / "model.safetensors")
    assert final_straight.keys() == final_resumed.keys()
    for name in final_straight:
        torch.testing.assert_close(final_resumed[name], final_straight[name], atol=1e-6, rtol=1e-5, msg=name)
    at_checkpoint = load_file(checkpoint / "model.safetensors")
    assert any(not torch.equal(at_checkpoint[name], final_straight[name]) for name in at_checkpoint)
    results = json.loads((killed_dir / "train_results.json").read_text())
    assert results["world_size"] == 2


def test_a_crashed_generation_leaves_nothing_that_looks_complete(tmp_path):
    """A process killed while it writes SynthPEDES leaves only its staging folder; the next run ignores it,
    generates the data and removes it."""
    from ivt_hf.data import load_benchmark

    root = tmp_path / "cache"
    script = (
        "import sys\n"
        "from ivt_hf.data import load_benchmark\n"
        "load_benchmark('synthpedes', sys.argv[1], split_ids={'train': 200, 'validation': 20, 'test': 20},\n"
        "               image_size=(64, 32))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(root)], env=ENV, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(root.glob("*.tmp-*/imgs")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "generation ended before it could be killed"
    assert [path.name for path in root.iterdir() if ".tmp-" not in path.name and not path.name.endswith(".lock")] == []

    data = load_benchmark(
        "synthpedes", root, split_ids={"train": 200, "validation": 20, "test": 20}, image_size=(64, 32)
    )
    assert len(data["train"]) > 0 and not list(root.glob("*.tmp-*"))
