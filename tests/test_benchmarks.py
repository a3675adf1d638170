"""The benchmark scripts that must work the first time they run on their real machine: `benchmarks/gpu_suite.py
--smoke` (every row of the GPU suite on a CPU with the micro preset) and `benchmarks/bench_memory.py --quick`, and the
memory bench's rule for what it runs and what it extrapolates."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tarfile
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


def _fake_registry_sources(root: Path, emoji: int = 30) -> Path:
    """What `real_pairs.fetch` unpacks, made here without network: `emoji` drawable emoji (plus a Component one and
    one Twitter lacks, both left out), 3 Oxygen icons at each size and a symlinked duplicate."""
    import json
    import random

    from PIL import Image

    rng = random.Random(5)

    def png(path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGBA", (size, size), rng.randbytes(size * size * 4)).save(path)

    entries = []
    for number in range(emoji + 2):
        code = f"1F{number:03X}"
        category = "Component" if number == emoji else "Smileys & Emotion"
        entries.append(
            {
                "name": f"FACE {number}",
                "unified": code,
                "image": f"{code.lower()}.png",
                "short_name": f"face_{number}",
                "short_names": [f"face_{number}", f"f-{number}"],
                "category": category,
                "subcategory": "face-smiling",
                "sort_order": number,
            }
        )
        for vendor in ("google", "twitter")[: 1 if number == emoji + 1 else 2]:
            png(root / f"emoji-datasource-{vendor}/package/img/{vendor}/64/{code.lower()}.png", 64)
    (root / "emoji-datasource/package").mkdir(parents=True)
    (root / "emoji-datasource/package/emoji.json").write_text(json.dumps(entries))
    for size in (32, 48, 64, 128):
        folder = root / f"oxygen/usr/share/icons/oxygen/base/{size}x{size}"
        for context, name in (("apps", "accessories-calculator"), ("places", "user-home"), ("devices", "drive_cdrom")):
            png(folder / context / f"{name}.png", size)
        (folder / "places/user-home-alias.png").symlink_to("user-home.png")
    return root


def test_real_pairs_builds_identity_splits_and_unique_icons(tmp_path):
    real_pairs = _load("real_pairs.py")
    info = real_pairs.build(_fake_registry_sources(tmp_path / "sources"), tmp_path / "data")
    assert info["pretrain"]["pairs"] == 12  # 3 icons at 4 sizes; the symlinked name is the same image
    assert {split: counts["identities"] for split, counts in info["finetune"].items()} == {
        "train": 21,
        "validation": 3,
        "test": 6,
    }
    records = [json.loads(line) for line in (tmp_path / "data/finetune/metadata.jsonl").read_text().splitlines()]
    splits_of = {}
    for record in records:
        splits_of.setdefault(record["person_id"], set()).add(record["split"])
    assert len(records) == 60 and all(len(splits) == 1 for splits in splits_of.values())
    first = next(record for record in records if record["file_name"].endswith("1f000_google.png"))
    assert first["captions"] == [
        "face 0",
        "face 0, an emoji of smileys & emotion, face smiling",
        "emoji face 0 or f 0 (face smiling)",
    ]
    shards = sorted(path.name for path in (tmp_path / "data/pretrain").iterdir())
    assert shards == [f"pairs-{number:05d}.tar" for number in range(6)]  # 2 pairs each: at least 8 shards, or all
    keys = [
        name.split(".")[0] for shard in shards for name in tarfile.open(tmp_path / "data/pretrain" / shard).getnames()
    ]
    sizes = [int(key.split("_")[0]) for key in keys[::2]]
    assert sorted(sizes) == sorted([32, 48, 64, 128] * 3) and sizes != sorted(sizes)  # shuffled across the shards


def test_real_pairs_refuses_a_pretraining_image_equal_to_a_finetuning_one(tmp_path):
    real_pairs = _load("real_pairs.py")
    sources = _fake_registry_sources(tmp_path / "sources")
    icon = sources / "oxygen/usr/share/icons/oxygen/base/64x64/apps/accessories-calculator.png"
    icon.write_bytes((sources / "emoji-datasource-twitter/package/img/twitter/64/1f003.png").read_bytes())
    with pytest.raises(SystemExit, match="pre-training images equal to fine-tuning images: \\['64_apps_"):
        real_pairs.build(sources, tmp_path / "data")


@pytest.mark.slow  # about 10 subprocess start-ups: 2-3.5 minutes
def test_the_real_transfer_bench_runs_both_arms_over_two_seeds_with_quick(tmp_path):
    """The whole path offline: two-process pre-training, both fine-tuning arms, evaluation, the probe, the summary."""
    _load("real_pairs.py").build(_fake_registry_sources(tmp_path / "sources"), tmp_path / "data")
    flags = f"--quick --probe --data_dir {tmp_path / 'data'} --out {tmp_path / 'out'}".split()
    result = _run("bench_real_transfer.py", *flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved = json.loads((tmp_path / "out/results.json").read_text())
    rows = saved["rows"]
    assert [(row["pretrain_seed"], row["finetune_seed"]) for row in rows] == [(0, 0), (1, 1)]
    for arm in ("scratch", "pretrained"):
        values = [row[arm]["R1"] for row in rows]
        assert saved["summary"][arm]["R1"]["mean"] == round(sum(values) / 2, 2)
        assert saved["summary"][arm]["R1"]["min"] == round(min(values), 2)
    differences = [row["pretrained"]["mAP"] - row["scratch"]["mAP"] for row in rows]
    assert saved["summary"]["difference"]["mAP"]["max"] == round(max(differences), 2)
    scratch_start = rows[0]["probe"]["scratch"]["start"]
    assert scratch_start["ln_gain"] == 1.0 and scratch_start["image_norm"] == pytest.approx(128**0.5, abs=1e-3)
    # 4 pre-training steps barely move the temperature from its 0.07 start; the scratch arm has none
    assert rows[0]["probe"]["pretrained"]["pretraining_inverse_temperature"] == pytest.approx(1 / 0.07, rel=0.01)
    assert "pretraining_inverse_temperature" not in rows[0]["probe"]["scratch"]
    # pre-training starts from the recipe's initialisation (at the preset's 0.02 it collapses on real pairs)
    pretrained_config = json.loads((tmp_path / "out/pretrain-seed0/config.json").read_text())
    assert pretrained_config["initializer_range"] == 0.05 and pretrained_config["num_hidden_layers"] == 3
    assert set(rows[0]["pretrain_last_log"]) >= {"step", "loss_itc"}
    assert len(rows[0]["probe"]["pretrained"]["first_logs"]) == 5 and len(rows[0]["probe"]["scratch"]["eval_R1"]) == 2
    table = _table(result.stdout, "pretrain seed")
    assert [line.split()[:2] for line in table[:2]] == [["0", "0"], ["1", "1"]]
