"""Start IVT from public backbones: ViT-B/16 for the shared blocks and vision FFN, bert-base-uncased for the text.

The reference's "imagenet" start (`docs/design.md`, "Initialisation from public backbones"):
- ViT: CLS token, patch convolution (reused as is for stride 12), every block's norm1 / attention / norm2, the final
  norm -> the shared weights; each block's MLP -> the vision FFN; the 14x14 position grid is resized bilinearly
  (align_corners=False) to the model's grid, the CLS position kept; the classifier head is dropped.
- BERT: word / position / token-type embeddings and the embedding LayerNorm; each layer's `intermediate.dense` -> text
  FFN fc1 and `output.dense` -> text FFN fc2. BERT's attention and post-FFN LayerNorms are not used.
- The modality embedding keeps its own initialisation.

Accepted ViT layouts: timm (`blocks.{i}.attn.qkv`, ...) and transformers `ViTModel` (`encoder.layer.{i}.attention...`,
optionally under `vit.`). BERT: a transformers `BertModel` state dict, optionally under `bert.`.
"""

from __future__ import annotations

import logging
import math
import re

import torch
from torch import nn

from ..model.configuration_ivt import IVTConfig
from ..model.modeling_ivt import IVTModel
from .key_map import BERT_FFN, FINAL_NORM, IMAGE_EMBEDDINGS, SHARED_BLOCK, TEXT_EMBEDDINGS, VIT_FFN, block_key

logger = logging.getLogger(__name__)


class BackboneLayoutError(ValueError):
    """A backbone state dict whose layout or shapes do not fit the IVT config."""


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if any(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    return dict(state_dict)


def timm_vit_from_transformers_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers `ViTModel` state dict to timm's names (q, k, v fused into one [q; k; v] projection)."""
    state_dict = _strip_prefix(state_dict, "vit.")
    converted = {
        "cls_token": state_dict["embeddings.cls_token"],
        "pos_embed": state_dict["embeddings.position_embeddings"],
        "patch_embed.proj.weight": state_dict["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": state_dict["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": state_dict["layernorm.weight"],
        "norm.bias": state_dict["layernorm.bias"],
    }
    layer_indices = {int(m.group(1)) for key in state_dict if (m := re.match(r"encoder\.layer\.(\d+)\.", key))}
    renames = {
        "layernorm_before": "norm1",
        "attention.output.dense": "attn.proj",
        "layernorm_after": "norm2",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
    }
    for index in sorted(layer_indices):
        source = f"encoder.layer.{index}."
        for kind in ("weight", "bias"):
            for old, new in renames.items():
                converted[f"blocks.{index}.{new}.{kind}"] = state_dict[f"{source}{old}.{kind}"]
            converted[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat(
                [state_dict[f"{source}attention.attention.{part}.{kind}"] for part in ("query", "key", "value")]
            )
    return converted


def resize_position_embedding(position_embedding: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """`(1, 1 + g*g, D)` square-grid positions -> `(1, 1 + n_y*n_x, D)`: CLS kept, grid resized bilinearly."""
    num_grid = position_embedding.shape[1] - 1
    side = math.isqrt(num_grid)
    if side * side != num_grid:
        raise BackboneLayoutError(f"ViT pos_embed has {num_grid} grid positions, not a square grid")
    class_position, grid = position_embedding[:, :1], position_embedding[:, 1:]
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, side, side)
    grid = nn.functional.interpolate(grid, size=grid_size, mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_size[0] * grid_size[1], -1)
    return torch.cat([class_position, grid], dim=1)


def vit_to_ivt_state_dict(vit_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """IVTModel tensors taken from a ViT (timm or transformers layout)."""
    if "embeddings.cls_token" in vit_state_dict or "vit.embeddings.cls_token" in vit_state_dict:
        vit_state_dict = timm_vit_from_transformers_layout(vit_state_dict)
    if "cls_token" not in vit_state_dict:
        raise BackboneLayoutError(
            "ViT state dict is neither timm layout (cls_token, blocks.*) nor transformers ViTModel"
        )
    ivt_state = {
        IMAGE_EMBEDDINGS[name]: vit_state_dict[name]
        for name in ("cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias")
    }
    ivt_state[IMAGE_EMBEDDINGS["pos_embed"]] = resize_position_embedding(vit_state_dict["pos_embed"], config.grid_size)
    ivt_state |= {new: vit_state_dict[old] for old, new in FINAL_NORM.items()}
    for index in range(config.num_hidden_layers):
        for old, new in (SHARED_BLOCK | VIT_FFN).items():
            for kind in ("weight", "bias"):
                key = f"blocks.{index}.{old}.{kind}"
                if key not in vit_state_dict:
                    raise BackboneLayoutError(
                        f"ViT state dict lacks {key} (the IVT config has {config.num_hidden_layers} layers)"
                    )
                ivt_state[block_key(index, new, kind)] = vit_state_dict[key]
    return ivt_state


def bert_to_ivt_state_dict(bert_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """IVTModel tensors taken from a transformers BertModel (embeddings and the FFN of each layer)."""
    bert_state_dict = _strip_prefix(bert_state_dict, "bert.")
    if "embeddings.word_embeddings.weight" not in bert_state_dict:
        raise BackboneLayoutError("BERT state dict lacks embeddings.word_embeddings.weight (not a BertModel layout)")
    missing = [name for name in TEXT_EMBEDDINGS if name not in bert_state_dict]
    if missing:
        raise BackboneLayoutError(f"BERT state dict lacks {', '.join(missing)} (not a BertModel layout)")
    ivt_state = {new: bert_state_dict[old] for old, new in TEXT_EMBEDDINGS.items()}
    for index in range(config.num_hidden_layers):
        for old, new in BERT_FFN.items():
            for kind in ("weight", "bias"):
                key = f"encoder.layer.{index}.{old}.{kind}"
                if key not in bert_state_dict:
                    raise BackboneLayoutError(
                        f"BERT state dict lacks {key} (the IVT config has {config.num_hidden_layers} layers)"
                    )
                ivt_state[block_key(index, new, kind)] = bert_state_dict[key]
    return ivt_state


def load_backbones(
    model: IVTModel,
    vit_state_dict: dict[str, torch.Tensor] | None = None,
    bert_state_dict: dict[str, torch.Tensor] | None = None,
) -> list[str]:
    """Copy backbone weights into `model` in place; returns the IVT keys that were set. Shapes are checked."""
    new_state: dict[str, torch.Tensor] = {}
    if vit_state_dict is not None:
        new_state.update(vit_to_ivt_state_dict(vit_state_dict, model.config))
    if bert_state_dict is not None:
        new_state.update(bert_to_ivt_state_dict(bert_state_dict, model.config))
    own_state = model.state_dict()
    for key, tensor in new_state.items():
        if tensor.shape != own_state[key].shape:
            raise BackboneLayoutError(
                f"backbone tensor for {key}: shape {tuple(tensor.shape)}, the model has {tuple(own_state[key].shape)}"
            )
    with torch.no_grad():
        for key, tensor in new_state.items():
            own_state[key].copy_(tensor)
    logger.info("initialised %d tensors from backbones", len(new_state))
    return sorted(new_state)


def build_model_from_backbones(
    config: IVTConfig,
    vit_state_dict: dict[str, torch.Tensor] | None = None,
    bert_state_dict: dict[str, torch.Tensor] | None = None,
) -> IVTModel:
    """A new `IVTModel(config)` whose shared blocks, vision FFN and text side come from the given backbones."""
    model = IVTModel(config)
    load_backbones(model, vit_state_dict, bert_state_dict)
    return model


__all__ = [
    "BackboneLayoutError",
    "bert_to_ivt_state_dict",
    "build_model_from_backbones",
    "load_backbones",
    "resize_position_embedding",
    "timm_vit_from_transformers_layout",
    "vit_to_ivt_state_dict",
]
