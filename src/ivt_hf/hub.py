"""Saving folders that load everywhere: with `ivt_hf` installed (Auto classes) and without it (`trust_remote_code`)."""

from __future__ import annotations

from pathlib import Path

from .configuration_ivt import IVTConfig
from .image_processing_ivt import IVTImageProcessor
from .modeling_ivt import IVTModel
from .processing_ivt import IVTProcessor


def register_for_remote_code(model: IVTModel | None = None, processor: IVTProcessor | None = None) -> None:
    """Make `save_pretrained` write `auto_map` entries and copy the self-contained modules beside the weights."""
    IVTConfig.register_for_auto_class()
    IVTModel.register_for_auto_class("AutoModel")
    IVTImageProcessor.register_for_auto_class("AutoImageProcessor")
    IVTProcessor.register_for_auto_class("AutoProcessor")


def save_model_folder(model: IVTModel, processor: IVTProcessor, output_dir: str | Path) -> Path:
    """`save_pretrained` of model and processor into one folder, with `auto_map` for remote-code loading."""
    output_dir = Path(output_dir)
    register_for_remote_code(model, processor)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return output_dir
