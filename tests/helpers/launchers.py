"""How the tests start several real processes (a free loopback port, the two launchers users run) and kill them for
real (every worker, whatever its session, confirmed dead)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

# one thread per process: two processes on two cores, no oversubscription
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launcher(name: str, processes: int = 2) -> list[str]:
    """`torchrun` or `accelerate launch --multi_gpu` (which runs gloo on CPU) for `processes` local processes."""
    if name == "torchrun":
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(processes),
            "--master_port",
            str(free_port()),
        ]
    if name == "accelerate":
        return [
            sys.executable,
            *f"-m accelerate.commands.launch --multi_gpu --num_processes {processes} --num_machines 1".split(),
            *f"--mixed_precision no --dynamo_backend no --main_process_port {free_port()}".split(),
        ]
    raise ValueError(f"unknown launcher {name!r}")


def process_is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, dead but not yet reaped, counts as dead). Linux: reads /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # the state field follows the command name


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), whatever session or process group they are in:
    torchrun starts its workers in sessions of their own, so `os.killpg` on the launcher does not reach them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_hard(pids: list[int], timeout: float = 30.0) -> None:
    """SIGKILL every process in `pids` and wait until none of them runs; AssertionError if one survives."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.time() + timeout
    while any(process_is_running(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in pids if process_is_running(pid)]
    assert not survivors, f"processes {survivors} survived SIGKILL"


def wait_for_files(paths: list[Path], process, timeout: float = 900.0) -> None:
    """Wait until every path exists; AssertionError if `process` (a Popen) ends first or the time runs out."""
    deadline = time.time() + timeout
    while not all(path.is_file() for path in paths):
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before writing {paths}"
        assert time.time() < deadline, f"timed out waiting for {paths}"
        time.sleep(0.05)
