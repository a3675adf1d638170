"""How the tests start several real processes: a free loopback port, and the two launchers users run."""

from __future__ import annotations

import os
import socket
import sys

# one thread per process: two processes on two cores, no oversubscription
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(name: str, processes: int = 2) -> list[str]:
    """`torchrun` or `accelerate launch --multi_gpu` (which runs gloo on CPU) for `processes` local processes."""
    if name == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                str(free_port())]  # fmt: skip
    if name == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                str(free_port())]  # fmt: skip
    raise ValueError(f"unknown launcher {name!r}")
