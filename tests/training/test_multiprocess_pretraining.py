"""Pre-training with two real processes (gloo on CPU, a DataLoader worker each) on generated image-text pairs written
as WebDataset shards: disjoint shards, no pair twice in an epoch, batches that mix shards, the loss falling, each
process its own random stream, a run killed for real mid-shard and resumed to the same weights, ITC over the gathered
batch equal to one process over the whole batch, fine-tuning that starts from exactly the pre-trained shared weights,
and images that do not decode."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.itc_setting import itc_model_and_batch
from helpers.launchers import ENV, descendants, kill_hard, launcher, process_is_running, wait_for_files
from PIL import Image
from safetensors.torch import load_file

from ivt_hf.data.pair_writing import write_webdataset_shards

ROOT = Path(__file__).resolve().parents[2]
HANG_WORKER = ROOT / "tests" / "helpers" / "pretrain_hang_worker.py"
ITC_WORKER = ROOT / "tests" / "helpers" / "itc_gather_worker.py"
NUM_PAIRS, PAIRS_PER_SHARD, BATCH, BUFFER = 96, 12, 8, 16  # 8 shards: 4 per process, 6 steps per epoch
COLOURS = {
    "red": (220, 30, 30),
    "blue": (30, 30, 220),
    "green": (30, 200, 30),
    "yellow": (230, 230, 20),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


def _pairs(count: int = NUM_PAIRS, broken: set[int] = frozenset()):
    rng = random.Random(0)
    for number in range(count):
        top, bottom = rng.choice(list(COLOURS)), rng.choice(list(COLOURS))
        image = Image.new("RGB", (32, 96), COLOURS[top])
        image.paste(Image.new("RGB", (32, 48), COLOURS[bottom]), (0, 48))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG")
        data = buffer.getvalue()
        if number in broken:
            data = data[: len(data) // 2]  # truncated: it opens, but its pixels do not decode
        garment = rng.choice(["shirt", "coat", "t-shirt", "jacket"])
        yield f"{number:06d}", data, f"A person in a {top} {garment}, with {bottom} trousers."


def _flags(shards: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        *f"pretrain --dataset_name {shards} --output_dir {output_dir} --model_preset tiny --max_steps".split(),
        *f"9 --per_device_train_batch_size {BATCH} --logging_steps 1 --save_steps 4 --save_total_limit".split(),
        *f"2 --learning_rate 5e-4 --shuffle_buffer_size {BUFFER} --dataloader_num_workers 1".split(),
        *"--log_pair_keys --seed 0".split(),
        *extra,
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretraining")
    shards = root / "shards"
    write_webdataset_shards(_pairs(), shards, pairs_per_shard=PAIRS_PER_SHARD)
    result = _run([*launcher("torchrun"), "-m", "ivt_hf", *_flags(shards, root / "reference")])
    assert result.returncode == 0, result.stderr[-4000:]
    return {"root": root, "shards": shards, "output": root / "reference"}


def _pair_records(output: Path) -> list[list[dict]]:
    return [
        [json.loads(line) for line in (output / f"pair_keys_rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    ]


def test_two_processes_read_disjoint_shards_no_pair_twice_and_batches_mix_shards(reference_run):
    records = _pair_records(reference_run["output"])
    all_keys = {f"pairs-{n // PAIRS_PER_SHARD:05d}.tar/{n:06d}" for n in range(NUM_PAIRS)}
    by_epoch = {0: [[], []], 1: [[], []]}
    for rank, steps in enumerate(records):
        assert [record["step"] for record in steps] == list(range(1, 10))
        for record in steps:
            assert len(record["pairs"]) == BATCH
            for epoch, key in record["pairs"]:
                by_epoch[epoch][rank].append(key)
        # the shuffle buffer: a batch draws from BUFFER pairs, so it mixes shards (unshuffled, it held one or two)
        mixed = [len({key.split("/")[0] for _, key in record["pairs"]}) >= 2 for record in steps]
        assert sum(mixed) >= 7, mixed
    epoch0 = by_epoch[0]
    for keys in epoch0:  # no pair twice; at most the buffer's pairs of epoch 0 are still waiting after 9 steps
        assert len(keys) == len(set(keys)) and NUM_PAIRS // 2 - BUFFER <= len(keys) <= NUM_PAIRS // 2
    assert set(epoch0[0]) | set(epoch0[1]) <= all_keys and not set(epoch0[0]) & set(epoch0[1])
    shards = [{key.split("/")[0] for key in keys} for keys in epoch0]
    assert not shards[0] & shards[1] and len(shards[0]) == len(shards[1]) == 4  # whole shards per process
    for rank in (0, 1):
        assert len(by_epoch[1][rank]) == len(set(by_epoch[1][rank]))
    assert not {key.split("/")[0] for key in by_epoch[1][0]} & {key.split("/")[0] for key in by_epoch[1][1]}
    first_shards = [steps[0]["pairs"][0][1].split("/")[0] for steps in records]
    epoch1_first = [
        next(key for epoch, key in (p for r in steps for p in r["pairs"]) if epoch == 1).split("/")[0]
        for steps in records
    ]
    assert first_shards != epoch1_first  # a new shard order in the new epoch


def test_the_loss_falls_and_the_output_is_a_pretraining_folder(reference_run):
    output = reference_run["output"]
    log = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == list(range(1, 10))
    first, last = log[:3], log[-3:]
    for name in ("loss", "loss_mlm"):
        assert sum(r[name] for r in last) / 3 < sum(r[name] for r in first) / 3 - 0.3, name
    assert all(r["loss"] == pytest.approx(r["loss_itc"] + r["loss_itm"] + r["loss_mlm"], abs=1e-3) for r in log)
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["IVTForPreTraining"]
    results = json.loads((output / "pretrain_results.json").read_text())
    assert results["steps"] == 9 and results["world_size"] == 2 and results["pairs_seen"] == 9 * 2 * BATCH
    assert results["pairs_skipped"] == 0
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-8", "checkpoint-9"]


def test_each_process_draws_from_its_own_random_stream(reference_run):
    """One initialisation (DDP would overwrite others anyway), then seed + rank: the processes' random states differ
    (dropout, the ITM hard negatives), where they used to be identical."""
    checkpoint = reference_run["output"] / "checkpoint-9"
    states = [torch.load(checkpoint / f"rng_rank{rank}.pt", weights_only=True)["torch"] for rank in (0, 1)]
    assert not torch.equal(states[0], states[1])


def test_a_run_killed_mid_shard_resumes_to_the_same_weights(reference_run, tmp_path):
    output = tmp_path / "interrupted"
    hung = tmp_path / "hung"
    # every process of the run stops after step 5 (checkpoint-4 is the last one) and is then killed for real
    command = [*launcher("torchrun"), str(HANG_WORKER), "5", str(hung), *_flags(reference_run["shards"], output)]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, start_new_session=True
    )
    wait_for_files([hung / f"hung_rank{rank}.json" for rank in (0, 1)], process)
    trainers = [json.loads((hung / f"hung_rank{rank}.json").read_text())["pid"] for rank in (0, 1)]
    everything = [*descendants(process.pid), process.pid]  # launcher, training processes, their DataLoader workers
    assert set(trainers) <= set(everything) and len(everything) >= 5
    kill_hard(everything)
    process.wait()
    assert not any(process_is_running(pid) for pid in everything)
    assert sorted(path.name for path in output.glob("checkpoint-*")) == ["checkpoint-4"]
    assert not (output / "model.safetensors").exists() and not (output / "pretrain_results.json").exists()
    for rank in (0, 1):  # the checkpoint lies inside a shard: its stream position is not a shard boundary
        position = json.loads((output / "checkpoint-4" / f"shuffle_rank{rank}.json").read_text())["stream"]["position"]
        assert 0 < position["example"] < PAIRS_PER_SHARD, position

    again = _run([sys.executable, "-m", "ivt_hf", *_flags(reference_run["shards"], output)])
    assert again.returncode == 2 and "--resume_from_checkpoint latest" in again.stderr  # a second run is refused
    wrong_world = _run(
        [sys.executable, "-m", "ivt_hf", *_flags(reference_run["shards"], output), "--resume_from_checkpoint", "latest"]
    )
    assert wrong_world.returncode == 2 and "written by 2 process(es)" in wrong_world.stderr
    # resumed under the other launcher, with two DataLoader workers instead of one
    resumed = _run(
        [
            *launcher("accelerate"),
            *"-m ivt_hf".split(),
            *_flags(reference_run["shards"], output),
            *"--resume_from_checkpoint latest --dataloader_num_workers 2".split(),
        ]
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    reference = load_file(reference_run["output"] / "model.safetensors")
    weights = load_file(output / "model.safetensors")
    assert reference.keys() == weights.keys()
    for name, tensor in reference.items():
        assert torch.equal(tensor, weights[name]), name
    assert _pair_records(output) == _pair_records(reference_run["output"])  # the same pairs at every step
    log = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    reference_log = [json.loads(line) for line in (reference_run["output"] / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in log] == [(r["step"], r["loss"]) for r in reference_log]


def test_fine_tuning_starts_from_exactly_the_pretrained_shared_weights(reference_run, tmp_path):
    output = tmp_path / "finetuned"
    command = [
        sys.executable,
        *f"-m ivt_hf train --model_name_or_path {reference_run['output']} --dataset_name synthpedes".split(),
        *f"--data_dir {tmp_path / 'synth'} --synth_train_ids 8 --synth_validation_ids 2".split(),
        *f"--synth_test_ids 2 --output_dir {output} --max_steps 1 --learning_rate 0 --weight_decay".split(),
        *"0 --per_device_train_batch_size 8 --images_per_id 2 --use_cpu --report_to none".split(),
        *"--eval_strategy no --save_strategy no --disable_tqdm true".split(),
    ]
    result = _run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "fusion" in result.stderr and "mlm_head" in result.stderr  # the dropped modules are logged
    pretrained = load_file(reference_run["output"] / "model.safetensors")
    finetuned = load_file(output / "model.safetensors")
    assert set(finetuned) == {name.removeprefix("ivt.") for name in pretrained if name.startswith("ivt.")}
    for name, tensor in finetuned.items():
        assert torch.equal(tensor, pretrained["ivt." + name]), name  # learning rate 0: the start itself
    assert json.loads((output / "config.json").read_text())["architectures"] == ["IVTModel"]


def test_gathered_itc_over_two_processes_equals_one_process_over_the_whole_batch(tmp_path):
    result = _run([*launcher("torchrun"), str(ITC_WORKER), str(tmp_path / "gathered.pt")])
    assert result.returncode == 0, result.stderr[-4000:]
    gathered = torch.load(tmp_path / "gathered.pt", weights_only=True)

    model, pixels, ids = itc_model_and_batch()
    out = model(pixels, ids)
    out.loss_itc.backward()
    assert gathered["loss"].item() == pytest.approx(out.loss_itc.item(), rel=1e-5)
    assert gathered["grads"].keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(gathered["grads"][name], parameter.grad, rtol=1e-4, atol=1e-6)


def test_pairs_that_are_not_there_are_one_error_line(tmp_path):
    result = _run([sys.executable, "-m", "ivt_hf", *_flags(tmp_path / "no_such_shards", tmp_path / "out")])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and str(tmp_path / "no_such_shards") in errors[0]
    assert "Traceback" not in result.stderr


def test_continuing_from_a_pretraining_folder_with_accumulation_and_bf16(reference_run, tmp_path):
    output = tmp_path / "continued"
    flags = _flags(
        reference_run["shards"],
        output,
        "--model_name_or_path",
        str(reference_run["output"]),
        "--gradient_accumulation_steps",
        "2",
        "--bf16",
        "true",
    )
    flags[flags.index("--max_steps") + 1] = "2"
    flags[flags.index("--per_device_train_batch_size") + 1] = "4"
    flags[flags.index("--shuffle_buffer_size") + 1] = "0"
    result = _run([sys.executable, "-m", "ivt_hf", *flags])
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((output / "pretrain_results.json").read_text())
    assert results["steps"] == 2 and results["pairs_seen"] == 2 * 2 * 4 and results["world_size"] == 1
    (records,) = [[json.loads(line) for line in (output / "pair_keys_rank0.jsonl").read_text().splitlines()]]
    assert [(r["step"], r["micro_step"]) for r in records] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    keys = [key for r in records for _, key in r["pairs"]]
    assert len(keys) == len(set(keys)) == 16  # one process reads every shard: no pair twice within the epoch
    continued, start = load_file(output / "model.safetensors"), load_file(reference_run["output"] / "model.safetensors")
    assert continued.keys() == start.keys()
    assert not torch.equal(continued["ivt.post_layernorm.weight"], start["ivt.post_layernorm.weight"])  # it trained


def test_images_that_do_not_decode_are_skipped_counted_and_logged_or_one_error_line(tmp_path):
    shards = tmp_path / "shards"
    write_webdataset_shards(_pairs(24, broken={5}), shards, pairs_per_shard=12)
    flags = _flags(shards, tmp_path / "skip", "--on_invalid", "skip", "--dataloader_num_workers", "0")
    flags[flags.index("--max_steps") + 1] = "4"
    skipped = _run([sys.executable, "-m", "ivt_hf", *flags])
    assert skipped.returncode == 0, skipped.stderr[-4000:]
    broken_key = "pairs-00000.tar/000005"
    assert f"skipped a pair whose image does not decode: {shards}: sample {broken_key!r}" in skipped.stderr
    results = json.loads((tmp_path / "skip" / "pretrain_results.json").read_text())
    assert results["pairs_skipped"] == 1 and results["pairs_seen"] == 4 * BATCH - 1
    trained = [key for record in _pair_records_of(tmp_path / "skip", 0) for _, key in record["pairs"]]
    assert broken_key not in trained and len(trained) == 4 * BATCH - 1

    flags[flags.index("--on_invalid") + 1] = "error"
    flags[flags.index("--output_dir") + 1] = str(tmp_path / "error")
    raised = _run([sys.executable, "-m", "ivt_hf", *flags])
    errors = [line for line in raised.stderr.splitlines() if line.startswith("error:")]
    assert raised.returncode == 2 and len(errors) == 1 and "Traceback" not in raised.stderr
    assert broken_key in errors[0] and "does not decode" in errors[0] and "--on_invalid skip" in errors[0]


def _pair_records_of(output: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (output / f"pair_keys_rank{rank}.jsonl").read_text().splitlines()]


def test_overwrite_output_dir_replaces_only_a_run_folder_ivt_hf_wrote(reference_run, tmp_path):
    """A second run into a finished run's folder is refused, replaced with --overwrite_output_dir; a folder of the
    user's is never deleted, even with --overwrite_output_dir."""
    flags = _flags(reference_run["shards"], tmp_path / "run", "--dataloader_num_workers", "0")
    flags[flags.index("--max_steps") + 1] = "1"
    assert _run([sys.executable, "-m", "ivt_hf", *flags]).returncode == 0
    first = (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns
    again = _run([sys.executable, "-m", "ivt_hf", *flags])
    assert again.returncode == 2 and "--overwrite_output_dir" in again.stderr
    replaced = _run([sys.executable, "-m", "ivt_hf", *flags, "--overwrite_output_dir"])
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns != first

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    flags[flags.index("--output_dir") + 1] = str(mine)
    refused = _run([sys.executable, "-m", "ivt_hf", *flags, "--overwrite_output_dir"])
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "not written by ivt_hf" in errors[0]
    assert (mine / "thesis.tex").read_text() == "months of work"


PRECISION_RUN = """
import json, sys
from ivt_hf.training.pretraining import PretrainingRun, parse_pretraining_args
run = PretrainingRun(*parse_pretraining_args(sys.argv[1:]))
model = run.accelerator.unwrap_model(run.model)
dtypes = []  # the output dtype of a layer of the shared encoder and of the fusion encoder, at every forward
for layer in (model.ivt.encoder.layers[0].vision_mlp.fc1, model.fusion.layer[0].intermediate.dense):
    layer.register_forward_hook(lambda module, args, output: dtypes.append(str(output.dtype)))
result = run.run()
print(json.dumps({"dtypes": sorted(set(dtypes)), "weights": str(next(model.parameters()).dtype),
                  "loss_scaler": run.accelerator.scaler is not None, "losses": result.last_losses}))
"""


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_pretraining_mixed_precision_runs_under_autocast(reference_run, tmp_path, precision):
    """--bf16 (CPU or GPU) / --fp16 (GPU): both encoders really compute in the low precision (a hook
    records the dtype of their activations), with float32 master weights, finite losses, a loss scaler for fp16."""
    import math

    if precision == "fp16" and not torch.cuda.is_available():
        pytest.skip("fp16 autocast with its loss scaler needs a CUDA GPU; on a CPU --fp16 is refused")
    flags = _flags(
        reference_run["shards"], tmp_path / precision, f"--{precision}", "true", "--dataloader_num_workers", "0"
    )[1:]
    flags[flags.index("--max_steps") + 1] = "2"
    if precision == "bf16":
        flags.append("--use_cpu")
    completed = subprocess.run(
        [sys.executable, "-c", PRECISION_RUN, *flags], capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run = json.loads(completed.stdout.strip().splitlines()[-1])
    assert run["dtypes"] == [{"bf16": "torch.bfloat16", "fp16": "torch.float16"}[precision]], run
    assert run["weights"] == "torch.float32" and run["loss_scaler"] == (precision == "fp16")
    assert all(math.isfinite(value) for value in run["losses"].values()) and len(run["losses"]) == 4


def _small_run_flags(tmp_path: Path, output: Path, *extra: str) -> list[str]:
    """One process, no DataLoader worker, a checkpoint at every step, on 24 pairs of its own."""
    shards = tmp_path / "shards"
    if not shards.exists():
        write_webdataset_shards(_pairs(24), shards, pairs_per_shard=12)
    flags = _flags(shards, output, "--dataloader_num_workers", "0", *extra)
    flags[flags.index("--save_steps") + 1] = "1"
    return flags


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_second_run_never_deletes_the_folder_of_a_live_run(tmp_path):
    """Two real processes: a run that is alive (stopped after step 2, checkpoint-1 written) holds its folder; a second
    run into it with --overwrite_output_dir is refused at once, naming the folder, and deletes nothing."""
    output, hung = tmp_path / "live", tmp_path / "hung"
    command = [sys.executable, str(HANG_WORKER), "2", str(hung), *_small_run_flags(tmp_path, output)]
    first = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, start_new_session=True
    )
    try:
        wait_for_files([hung / "hung_rank0.json"], first)
        before = _snapshot(output)
        assert "checkpoint-1/model.safetensors" in before
        second = _run([sys.executable, "-m", "ivt_hf", *_small_run_flags(tmp_path, output), "--overwrite_output_dir"])
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert second.returncode == 2 and errors == [
            f"error: {output} is being written by another ivt_hf command that is still running (it holds "
            f"{tmp_path / '.live.lock'}); wait for it to end or choose another output folder"
        ], second.stderr[-3000:]
        assert _snapshot(output) == before and first.poll() is None
    finally:
        kill_hard([*descendants(first.pid), first.pid])
        first.wait()


def test_resuming_from_a_checkpoint_elsewhere_never_writes_into_a_folder_of_the_user(tmp_path):
    """--resume_from_checkpoint PATH outside --output_dir still checks --output_dir: the user's folder is refused (and
    left as it was), a new one is fine."""
    flags = _small_run_flags(tmp_path, tmp_path / "run")
    flags[flags.index("--max_steps") + 1] = "1"
    assert _run([sys.executable, "-m", "ivt_hf", *flags]).returncode == 0
    checkpoint = tmp_path / "run" / "checkpoint-1"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    before = _snapshot(mine)
    flags[flags.index("--output_dir") + 1] = str(mine)
    refused = _run([sys.executable, "-m", "ivt_hf", *flags, "--resume_from_checkpoint", str(checkpoint)])
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and errors == [
        f"error: {mine} is not empty and was not written by ivt_hf (no .ivt_hf-output.json), so it is never "
        "replaced, even with --overwrite_output_dir: remove it yourself or choose another output folder"
    ], refused.stderr[-3000:]
    assert _snapshot(mine) == before

    flags[flags.index("--output_dir") + 1] = str(tmp_path / "new")
    resumed = _run([sys.executable, "-m", "ivt_hf", *flags, "--resume_from_checkpoint", str(checkpoint)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / "new" / "model.safetensors").is_file()
