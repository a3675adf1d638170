"""Two real processes (torchrun, gloo, CPU): the gathered CMPM loss gives exactly the single-process gradient.

The worker (tests/helpers/gather_loss_worker.py) wraps a tiny model in DistributedDataParallel, which AVERAGES
gradients over ranks. `cmpm_loss_global` is correct when, after that averaging, every rank holds the gradient that
one process computes over the concatenated batch (see the convention in `ivt_hf.training.distributed`). The per-process
`cmpm_loss` (the reference's behaviour) must give something else: the mean of the two halves' gradients.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.launchers import free_port

from ivt_hf.training.finetuning.losses import cmpm_loss

WORKER = Path(__file__).parents[1] / "helpers" / "gather_loss_worker.py"


def _load_worker():
    spec = importlib.util.spec_from_file_location("gather_loss_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _single_process_grads(rows: slice | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    worker = _load_worker()
    model, image_features, text_features, labels = worker.build_problem()
    rows = rows or slice(None)
    image_embeddings, text_embeddings = model(image_features[rows], text_features[rows])
    loss = cmpm_loss(image_embeddings, text_embeddings, labels[rows])
    loss.backward()
    return loss.detach(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("gather_loss")
    command = [
        sys.executable,
        *"-m torch.distributed.run --nnodes 1 --nproc_per_node 2 --master_addr 127.0.0.1".split(),
        *f"--master_port {free_port()} {WORKER} {out_dir}".split(),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert completed.returncode == 0, f"torchrun failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


def test_two_processes_really_ran(rank_results):
    assert [int(result["world_size"]) for result in rank_results] == [2, 2]


@pytest.mark.parametrize("scenario", ["gathered_even", "gathered_uneven"])
def test_gathered_loss_matches_single_process_over_concatenated_batch(rank_results, scenario):
    expected_loss, expected_grads = _single_process_grads()
    for result in rank_results:
        torch.testing.assert_close(result[scenario]["loss"], expected_loss, rtol=1e-12, atol=1e-12)
        for name, expected in expected_grads.items():
            torch.testing.assert_close(result[scenario]["grads"][name], expected, rtol=1e-10, atol=1e-12)


def test_per_process_loss_is_the_reference_behaviour_and_differs(rank_results):
    _, global_grads = _single_process_grads()
    halves = [_single_process_grads(slice(0, 6))[1], _single_process_grads(slice(6, 12))[1]]
    for result in rank_results:
        grads = result["per_process_even"]["grads"]
        for name in global_grads:
            # DDP's average of the two per-process gradients...
            torch.testing.assert_close(grads[name], (halves[0][name] + halves[1][name]) / 2, rtol=1e-10, atol=1e-12)
        # ...is not the global-batch gradient (negatives and positives from the other rank are missing).
        difference = max((grads[name] - global_grads[name]).abs().max().item() for name in global_grads)
        assert difference > 1e-3
