"""Weights from elsewhere into IVT: the authors' checkpoints (`original_checkpoint.py`) and the public ViT / BERT
backbones (`backbones.py`), both through one key map (`key_map.py`)."""

from .backbones import BackboneLayoutError, build_model_from_backbones, load_backbones
from .key_map import reference_to_hf_key
from .original_checkpoint import (
    CheckpointConversionError,
    ConversionReport,
    convert_original_checkpoint,
    convert_to_folder,
)

__all__ = [
    "BackboneLayoutError",
    "CheckpointConversionError",
    "ConversionReport",
    "build_model_from_backbones",
    "convert_original_checkpoint",
    "convert_to_folder",
    "load_backbones",
    "reference_to_hf_key",
]
