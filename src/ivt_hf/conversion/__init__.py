"""Weights from elsewhere into IVT: the authors' checkpoints (`original_checkpoint.py`), the public ViT / BERT
backbones (`backbones.py`), both through one key map (`key_map.py`), and the encoder of a pre-training model to
fine-tune from (`pretraining_transfer.py`; not to be confused with `training/pretraining/`, which trains one)."""

from .backbones import BackboneLayoutError, bert_to_fusion_state_dict, load_backbones
from .key_map import reference_to_hf_key
from .original_checkpoint import (
    CheckpointConversionError,
    ConversionReport,
    convert_original_checkpoint,
    convert_original_pretraining_checkpoint,
    convert_to_folder,
)
from .pretraining_transfer import (
    PretrainingTransferError,
    PretrainingTransferReport,
    encoder_from_pretraining,
    is_pretraining_folder,
)

__all__ = [
    "BackboneLayoutError",
    "CheckpointConversionError",
    "ConversionReport",
    "PretrainingTransferError",
    "PretrainingTransferReport",
    "bert_to_fusion_state_dict",
    "convert_original_checkpoint",
    "convert_original_pretraining_checkpoint",
    "convert_to_folder",
    "encoder_from_pretraining",
    "is_pretraining_folder",
    "load_backbones",
    "reference_to_hf_key",
]
