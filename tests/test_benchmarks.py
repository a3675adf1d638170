"""The benchmark scripts that must work the first time they run on their real machine: `benchmarks/gpu_suite.py
--smoke` (every row of the GPU suite on a CPU with the micro preset) and `benchmarks/bench_memory.py --quick`, and the
memory bench's rule for what it runs and what it extrapolates."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _run(script: str, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BENCHMARKS / script), *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)


def _table(stdout: str, header_start: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header_start))
    return [line for line in lines[start + 1 :] if line.strip() and not line.startswith("total ")]


def _load(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), BENCHMARKS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _onnx_export_here() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("ivt_hf.onnx", "optimum", "onnxruntime"))


def test_the_gpu_suite_runs_every_row_on_a_cpu_with_smoke():
    result = _run("gpu_suite.py", "--smoke", "--threads", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [re.split(r"\s{2,}", line.strip()) for line in _table(result.stdout, "section")]
    assert all(len(row) == 7 for row in rows), rows  # section, setting, value, unit, x ref, peak GiB, note
    fine_tuning = [("fine-tuning step", f"{p} {a}") for p in ("fp16", "bf16") for a in ("eager", "sdpa", "compile")]
    fine_tuning[0] = ("fine-tuning step", "fp16 eager (reference pattern)")
    encode = [("encode", f"PyTorch float32 {what}") for what in ("images", "captions")]
    onnx = [("encode", f"ONNX Runtime fp32 {what}") for what in ("images", "captions")]
    if not _onnx_export_here():  # until `ivt export onnx` exists here, its row says why it is missing
        onnx = [("encode", "ONNX Runtime")]
    paper = [("paper batch, 4 images", f"fp16 sdpa, {label}") for label in ("plain", "checkpointing")]
    paper.append(("paper batch, 4 images", "fp16 sdpa, checkpointing + GradCache (5 pairs a chunk)"))
    expected = [*fine_tuning, ("pre-training step", "fp16 sdpa"), *encode, *onnx, *paper]
    assert [tuple(row[:2]) for row in rows] == expected
    units = {"fine-tuning step": "images/s", "pre-training step": "pairs/s", "paper batch, 4 images": "images/s"}
    for section, setting, value, unit, ratio, peak, note in rows:
        if setting == "ONNX Runtime":
            assert value == "-" and note.startswith("not available (")
            continue
        assert float(value) > 0 and unit == units.get(section, "images/s" if "images" in setting else "captions/s")
        assert peak == "-"  # a CPU has no allocator peak to report
        assert (ratio != "-") == (section == "fine-tuning step")
    assert rows[0][4] == "1.00x"  # the reference pattern divides by itself
    assert "failed" not in result.stdout


def test_the_memory_bench_measures_each_configuration_with_quick():
    result = _run("bench_memory.py", "--quick", "--threads", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [row.split() for row in _table(result.stdout, "config")]
    assert [row[:4] for row in rows] == [
        ["plain", "2", "6", "-"],
        ["checkpointing", "2", "6", "-"],
        ["both", "2", "6", "4"],
    ]
    assert all(row[-1] == "measured" and 0.1 < float(row[4]) < 4 for row in rows)


def test_the_memory_bench_extrapolates_what_would_not_fit(monkeypatch, capsys):
    """Sizes past the calibration run only when their line says they fit; `both` stops growing at one chunk."""
    bench = _load("bench_memory.py")
    ran = []

    def fake_worker(setting, images, config_name, threads):  # GiB: 3 + 0.5 an image, or 0.1 with checkpointing
        ran.append((config_name, images))
        slope, grows_to = (0.5, images) if config_name == "plain" else (0.1, min(images, 28))
        peak = 3.0 + slope * (grows_to - 1)
        row = {"config": config_name, "images": images, "pairs": 3 * images, "chunk": None, "peak_gib": peak}
        return row | {"seconds": 1.0, "measured": True}

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    setting = bench.FULL | {"calibration": (1, 2), "images": (28, 112), "chunk": 84}
    rows = bench.table(setting, bench.CONFIGS, threads=2, limit_gib=12.0)
    # plain: 16.5 GiB at 28 images, 58.5 at 112: neither runs; checkpointing: 5.7 at 28 runs, 14.1 at 112 does not;
    # both: its line up to one chunk (84 pairs = 28 images): 5.7 at both sizes, both run
    runs_to_28 = [(name, images) for name in ("checkpointing", "both") for images in (1, 2, 28)]
    assert ran == [("plain", 1), ("plain", 2), *runs_to_28, ("both", 112)]
    extrapolated = {(row["config"], row["images"]): row["peak_gib"] for row in rows if not row["measured"]}
    assert extrapolated == {("plain", 28): 16.5, ("plain", 112): 58.5, ("checkpointing", 112): 14.1}
    assert "extrapolated" in capsys.readouterr().out


@pytest.mark.parametrize("points, images, expected", [([(1, 3.0), (2, 3.5)], 28, 16.5), ([(1, 2.0)], 9, 2.0)])
def test_the_memory_line(points, images, expected):
    assert _load("bench_memory.py").extrapolate(points, images) == pytest.approx(expected)
