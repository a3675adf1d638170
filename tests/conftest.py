"""Shared test helpers: the fixture folder and a tiny IVT config that runs in milliseconds on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"

torch.set_num_threads(2)


def tiny_config_kwargs(**overrides) -> dict:
    """The size of the authors' fixture model (hidden 32, 2 layers, 2 heads) at a small image size."""
    kwargs = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=30522,
        max_position_embeddings=64,
        image_size=(64, 32),
        patch_size=16,
        patch_stride=12,
        drop_path_rate=0.0,
        text_embedding_dropout=0.0,
    )
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def tiny_config():
    from ivt_hf import IVTConfig

    return IVTConfig(**tiny_config_kwargs())


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
