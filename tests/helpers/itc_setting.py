"""The model and batch of the gathered-ITC comparison, shared by `itc_gather_worker.py` (two processes) and
`tests/training/test_multiprocess_pretraining.py` (one process over the whole batch)."""

import torch

from ivt_hf.model import IVTConfig, IVTForPreTraining

BATCH = 8


def tiny_pretraining_config(**overrides) -> IVTConfig:
    """A two-block IVTForPreTraining config (vocabulary 120, 64x32 images) with one fusion layer and no dropout."""
    settings = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=120,
        max_position_embeddings=32,
        image_size=(64, 32),
        fusion_num_hidden_layers=1,
        fusion_hidden_dropout=0.0,
        fusion_attention_dropout=0.0,
        drop_path_rate=0.0,
        text_embedding_dropout=0.0,
    )
    return IVTConfig(**(settings | overrides))


def itc_model_and_batch() -> tuple[IVTForPreTraining, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = IVTForPreTraining(tiny_pretraining_config()).eval()
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(BATCH, 3, 64, 32, generator=generator)
    ids = torch.randint(5, 120, (BATCH, 9), generator=generator)
    return model, pixels, ids
