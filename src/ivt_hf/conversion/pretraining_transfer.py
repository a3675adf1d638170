"""Fine-tuning from a pre-training output: the `IVTModel` encoder of an `IVTForPreTraining`.

The authors pre-train at patch stride 16 and fine-tune CUHK-PEDES / ICFG-PEDES at stride 12. Their fine-tuning code
copies the encoder key by key inside a bare try/except, so the stride-16 position and modality embeddings, which do
not fit the stride-12 grid, are silently left at their initial values. Here every encoder tensor is copied exactly and
those two are resized bilinearly (align_corners=False, the CLS position kept, as the public ViT's positions are),
and both the resizing and the dropped pre-training modules are logged and reported.

    model, report = encoder_from_pretraining("ivt-pretrained", patch_stride=12)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..atomic import read_json_object
from ..errors import InputNotFoundError, IVTInputError
from ..hub.folder import check_weights
from ..model.configuration_ivt import IVTConfig
from ..model.modeling_ivt import IVTForPreTraining, IVTModel
from .backbones import resize_position_embedding
from .key_map import PRETRAINING_ENCODER_PREFIX
from .state_check import check_state_fits

logger = logging.getLogger(__name__)

# the image-grid tensors of the encoder: resized when the patch grid changes (stride or image size)
GRID_EMBEDDINGS = ("image_embeddings.position_embedding", "image_embeddings.modality_embedding")
# config entries that describe the saved pre-training model, not the new encoder
_NOT_INHERITED = ("architectures", "auto_map")


class PretrainingTransferError(IVTInputError):
    """The source is not a pre-training model, or the requested encoder cannot take its weights."""


@dataclass
class PretrainingTransferReport:
    """What `encoder_from_pretraining` did. Keys are `IVTModel` names (`copied`, `resized`) and `IVTForPreTraining`
    names (`dropped`)."""

    config: IVTConfig
    copied: list[str] = field(default_factory=list)
    resized: dict[str, tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=dict)  # key -> (old, new)
    dropped: list[str] = field(default_factory=list)
    dropped_modules: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"copied {len(self.copied)} encoder tensors exactly"]
        for key, (old, new) in self.resized.items():
            lines.append(f"resized {key}: grid {old[0]} x {old[1]} -> {new[0]} x {new[1]} (bilinear, CLS kept)")
        lines.append(f"dropped {', '.join(self.dropped_modules) or '-'} ({len(self.dropped)} tensors)")
        return "\n".join(lines)


def _config_json(path_or_id: str | Path) -> dict | None:
    """config.json of a local folder, or of a Hub repo (only that file is downloaded); None if it has none, an error
    naming it when it is not one JSON object."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            return None
    elif path.exists() or str(path_or_id).startswith((".", "/", "~")) or str(path_or_id).count("/") > 1:
        raise InputNotFoundError(f"not a model folder: {path_or_id}")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            config_path = Path(hf_hub_download(str(path_or_id), "config.json"))
        except EntryNotFoundError:
            return None
    return read_json_object(config_path, PretrainingTransferError, name=f"{path_or_id}: config.json")


def is_pretraining_folder(path_or_id: str | Path) -> bool:
    """Whether a saved folder (or Hub repo id) holds an `IVTForPreTraining`, by config.json's `architectures`."""
    config = _config_json(path_or_id)
    return bool(config) and "IVTForPreTraining" in (config.get("architectures") or [])


def _load_pretraining(model_or_path: IVTForPreTraining | IVTModel | str | Path) -> IVTForPreTraining:
    if isinstance(model_or_path, IVTForPreTraining):
        return model_or_path
    if isinstance(model_or_path, IVTModel):
        raise PretrainingTransferError(
            "got an IVTModel: it is already the encoder (no pre-training heads to drop); use it as it is"
        )
    if not is_pretraining_folder(model_or_path):
        raise PretrainingTransferError(
            f"{model_or_path} does not hold an IVTForPreTraining (config.json's architectures lacks it); a retrieval "
            "model folder loads with IVTModel.from_pretrained / AutoModel.from_pretrained directly"
        )
    if Path(model_or_path).is_dir():
        check_weights(model_or_path)  # safetensors only, readable: a pickle is refused, never unpickled
    return IVTForPreTraining.from_pretrained(str(model_or_path), use_safetensors=True)


def encoder_from_pretraining(
    model_or_path: IVTForPreTraining | str | Path,
    *,
    patch_stride: int | None = None,
    image_size: tuple[int, int] | None = None,
    **config_overrides,
) -> tuple[IVTModel, PretrainingTransferReport]:
    """The retrieval encoder (`IVTModel`) of a pre-training model, to fine-tune from.

    Args:
        model_or_path: an `IVTForPreTraining`, or a folder / Hub repo id that `IVTForPreTraining.from_pretrained`
            loads (config.json's `architectures` must name it).
        patch_stride, image_size: the fine-tuning grid, if it differs from the pre-training one (the authors:
            stride 16 -> 12). `image_embeddings.position_embedding` and `image_embeddings.modality_embedding` are then
            resized bilinearly (align_corners=False, CLS position kept).
        config_overrides: any other `IVTConfig` field of the new encoder (dropouts, token dropping, ...); the rest of
            the config is the pre-training one.
    Returns:
        the encoder (eval mode, the source's dtype and device; every other `ivt.*` tensor copied exactly) and a
        report of what was copied, resized and dropped (the fusion encoder, `itm_head`, `mlm_head`, the ITC
        temperature).
    Raises:
        PretrainingTransferError: the source is not a pre-training model, or an override changes a tensor shape other
            than the two grid embeddings (e.g. `hidden_size` or `patch_size`).
    """
    pretraining = _load_pretraining(model_or_path)
    config = _encoder_config(pretraining.config, patch_stride, image_size, config_overrides)
    source = pretraining.ivt.state_dict()
    reference = next(iter(source.values()))
    model = IVTModel(config).to(dtype=reference.dtype)
    report = PretrainingTransferReport(config=config)
    new_state = _fit_to_grid(source, tuple(pretraining.config.grid_size), tuple(config.grid_size), report)
    check_state_fits(
        new_state,
        model.state_dict(),
        PretrainingTransferError,
        origin="the pre-training model",
        tensors="encoder tensors",
        describe=lambda key: f"ivt.{key}",
        shape_note=" for the encoder with the overridden config (only the patch grid may change: patch_stride, "
        "image_size)",
    )
    model.load_state_dict(new_state, strict=True)
    model.to(device=reference.device).eval()

    report.dropped = sorted(key for key in pretraining.state_dict() if not key.startswith(PRETRAINING_ENCODER_PREFIX))
    report.dropped_modules = [
        f"fusion encoder ({len(pretraining.fusion.layer)} layers)",
        "itm_head",
        "mlm_head",
        "temperature",
    ]
    _log_transfer(report)
    return model, report


def _encoder_config(
    pretraining_config: IVTConfig,
    patch_stride: int | None,
    image_size: tuple[int, int] | None,
    config_overrides: dict,
) -> IVTConfig:
    """The new encoder's config: the pre-training one (less what describes the saved pre-training model) with the
    new grid and `config_overrides`, which must all be `IVTConfig` fields."""
    unknown = sorted(key for key in config_overrides if not hasattr(pretraining_config, key))
    if unknown:
        raise PretrainingTransferError(f"not IVTConfig fields: {', '.join(unknown)}")
    overrides = dict(config_overrides)
    if patch_stride is not None:
        overrides["patch_stride"] = patch_stride
    if image_size is not None:
        overrides["image_size"] = list(image_size)
    config_dict = {key: value for key, value in pretraining_config.to_dict().items() if key not in _NOT_INHERITED}
    config = IVTConfig.from_dict(config_dict | overrides)
    config._attn_implementation = pretraining_config._attn_implementation
    return config


def _fit_to_grid(
    source: dict[str, torch.Tensor],
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    report: PretrainingTransferReport,
) -> dict[str, torch.Tensor]:
    """The encoder tensors for the new grid: the grid embeddings resized when the grid changes, the rest as they are
    (the same tensors); each key is recorded in `report` as resized or copied."""
    new_state: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if key in GRID_EMBEDDINGS and old_grid != new_grid:
            resized = resize_position_embedding(tensor.detach().float().cpu(), new_grid, source_grid=old_grid)
            new_state[key] = resized.to(tensor.dtype)
            report.resized[key] = (old_grid, new_grid)
        else:
            new_state[key] = tensor
            report.copied.append(key)
    return new_state


def _log_transfer(report: PretrainingTransferReport) -> None:
    logger.info("encoder from pre-training: dropped the %s", ", ".join(report.dropped_modules))
    for key, (old, new) in report.resized.items():
        logger.info(
            "encoder from pre-training: resized %s from the %d x %d grid to %d x %d (bilinear, CLS kept)",
            key,
            *old,
            *new,
        )


__all__ = [
    "PretrainingTransferError",
    "PretrainingTransferReport",
    "encoder_from_pretraining",
    "is_pretraining_folder",
]
