"""`pip install -e .` into an environment that already has OTHER compatible versions of transformers, datasets and
accelerate resolves without changing them (pyproject.toml declares ranges; constraints.txt pins only our own runs).

Slow (a fresh venv and a few hundred MB from the package index, a few minutes):
`.venv/bin/python -m pytest -m slow tests/test_install.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# versions other than constraints.txt's, inside pyproject.toml's ranges
OTHER_VERSIONS = {"transformers": "5.24.0", "datasets": "5.1.0", "accelerate": "1.14.0"}
SMOKE = """
import importlib.metadata as metadata
import torch
import ivt_hf
from ivt_hf import IVTConfig, IVTModel, IVTProcessor
config = IVTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=64, image_size=(64, 32), drop_path_rate=0.0, text_embedding_dropout=0.0)
model, processor = IVTModel(config).eval(), IVTProcessor.from_config(config)
inputs = processor(images=[torch.zeros(3, 64, 32, dtype=torch.uint8)], text=["a man in a red coat"])
print(model(**inputs).logits_per_text.shape, {name: metadata.version(name) for name in %r})
"""


@pytest.mark.slow
def test_install_keeps_other_compatible_versions(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, timeout=900)
    subprocess.run([*pip, *(f"{name}=={version}" for name, version in OTHER_VERSIONS.items())], check=True, timeout=900)
    install = subprocess.run([*pip, "-e", str(ROOT)], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    smoke = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SMOKE % (tuple(OTHER_VERSIONS),)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert "torch.Size([1, 1])" in smoke.stdout
    assert str(OTHER_VERSIONS) in smoke.stdout, smoke.stdout
