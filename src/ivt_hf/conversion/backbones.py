"""Start IVT from public backbones: ViT-B/16 for the shared blocks and vision FFN, bert-base-uncased for the text.

The reference's "imagenet" start (`docs/design.md`, "Initialisation from public backbones"):
- ViT: CLS token, patch convolution (reused as is for stride 12), every block's norm1 / attention / norm2, the final
  norm -> the shared weights; each block's MLP -> the vision FFN; the 14x14 position grid is resized bilinearly
  (align_corners=False) to the model's grid, the CLS position kept; the classifier head is dropped.
- BERT: word / position / token-type embeddings and the embedding LayerNorm; each layer's `intermediate.dense` -> text
  FFN fc1 and `output.dense` -> text FFN fc2. BERT's attention and post-FFN LayerNorms are not used.
- The modality embedding keeps its own initialisation.
- `IVTForPreTraining` (the authors' pre-training): the encoder as above under `ivt.`; the fusion encoder's layers
  0..fusion_num_hidden_layers-1 from BERT's (self-attention, FFN, LayerNorms; the cross-attention keeps its random
  init); the MLM head's transform and bias from BERT's `cls.predictions` when the state dict has them
  (`BertForMaskedLM`, `BertForPreTraining`), its decoder tied to the word embeddings (or, untied, a copy of BERT's).

Accepted ViT layouts: timm (`blocks.{i}.attn.qkv`, ...) and transformers `ViTModel` (`encoder.layer.{i}.attention...`,
optionally under `vit.`). BERT: a transformers `BertModel` state dict, optionally under `bert.` (`BertForPreTraining`,
`BertForMaskedLM`). `read_backbone` fetches either from a file, a folder or a Hub repo id:

    google/vit-base-patch16-224-in21k              transformers ViT (config.json + model.safetensors or .bin)
    timm/vit_base_patch16_224.orig_in21k_ft_in1k   timm ViT-B/16, the original Google weights the paper started from
    google-bert/bert-base-uncased                  BERT (BertForPreTraining weights under `bert.`)
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import InputNotFoundError, IVTInputError
from ..model.configuration_ivt import IVTConfig
from ..model.modeling_ivt import IVTForPreTraining, IVTModel
from .key_map import (
    BERT_FFN,
    BERT_LAYER_PARTS,
    BERT_MLM_HEAD,
    FINAL_NORM,
    IMAGE_EMBEDDINGS,
    MLM_DECODER_WEIGHT,
    PRETRAINING_ENCODER_PREFIX,
    SHARED_BLOCK,
    TEXT_EMBEDDINGS,
    VIT_FFN,
    block_key,
    fusion_layer_key,
)
from .state_check import check_state_fits

logger = logging.getLogger(__name__)


class BackboneLayoutError(IVTInputError):
    """A backbone state dict whose layout or shapes do not fit the IVT config."""


def _legacy_layer_norm_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`LayerNorm.gamma` / `LayerNorm.beta` -> `LayerNorm.weight` / `.bias`: the names of the original TensorFlow port
    that google-bert/bert-base-uncased's files still carry (transformers renames them when it loads them)."""
    if not any(key.endswith(("LayerNorm.gamma", "LayerNorm.beta")) for key in state_dict):
        return state_dict
    renamed = {}
    for key, value in state_dict.items():
        if key.endswith("LayerNorm.gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith("LayerNorm.beta"):
            key = key[: -len("beta")] + "bias"
        renamed[key] = value
    return renamed


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


def resize_position_embedding(
    position_embedding: torch.Tensor, grid_size: tuple[int, int], source_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """`(1, 1 + s_y*s_x, D)` grid positions -> `(1, 1 + n_y*n_x, D)`: CLS kept, grid resized bilinearly
    (align_corners=False). The source grid `(s_y, s_x)` is square unless `source_grid` is given."""
    num_grid = position_embedding.shape[1] - 1
    if source_grid is None:
        side = math.isqrt(num_grid)
        if side * side != num_grid:
            raise BackboneLayoutError(f"ViT pos_embed has {num_grid} grid positions, not a square grid")
        source_grid = (side, side)
    elif source_grid[0] * source_grid[1] != num_grid:
        raise BackboneLayoutError(f"{num_grid} grid positions do not form the grid {source_grid[0]} x {source_grid[1]}")
    class_position, grid = position_embedding[:, :1], position_embedding[:, 1:]
    grid = grid.reshape(1, *source_grid, -1).permute(0, 3, 1, 2)  # (1, D, s_y, s_x)
    grid = nn.functional.interpolate(grid, size=grid_size, mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_size[0] * grid_size[1], -1)
    return torch.cat([class_position, grid], dim=1)


# a layer's tensor in each backbone layout
VIT_LAYER_KEY = "blocks.{index}.{part}.{kind}"
BERT_LAYER_KEY = "encoder.layer.{index}.{part}.{kind}"


def _layer_tensors(
    state_dict: dict[str, torch.Tensor],
    source_key: str,
    parts: Mapping[str, str],
    target_key: Callable[[int, str, str], str],
    num_layers: int,
) -> dict[str, torch.Tensor]:
    """The weight and bias of each of `parts` (backbone part -> IVT part) in layers 0..num_layers-1: read as
    `source_key` (`VIT_LAYER_KEY`, `BERT_LAYER_KEY`) spells them, named `target_key(index, part, kind)`. A tensor the
    backbone lacks is an error naming it."""
    tensors = {}
    for index in range(num_layers):
        for old, new in parts.items():
            for kind in ("weight", "bias"):
                key = source_key.format(index=index, part=old, kind=kind)
                if key not in state_dict:
                    raise BackboneLayoutError(
                        f"the backbone state dict lacks {key} (the model takes {num_layers} layers from it)"
                    )
                tensors[target_key(index, new, kind)] = state_dict[key]
    return tensors


def vit_to_ivt_state_dict(vit_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """IVTModel tensors taken from a ViT (timm or transformers layout)."""
    if "embeddings.cls_token" in vit_state_dict or "vit.embeddings.cls_token" in vit_state_dict:
        vit_state_dict = timm_vit_from_transformers_layout(vit_state_dict)
    if "cls_token" not in vit_state_dict:
        raise BackboneLayoutError(
            "ViT state dict is neither timm layout (cls_token, blocks.*) nor transformers ViTModel"
        )
    width, _, patch_height, patch_width = vit_state_dict["patch_embed.proj.weight"].shape
    if (patch_height, patch_width) != (config.patch_size, config.patch_size) or width != config.hidden_size:
        raise BackboneLayoutError(
            f"the ViT has {patch_height}x{patch_width} patches and width {width}; this IVT model needs "
            f"{config.patch_size}x{config.patch_size} patches and width {config.hidden_size} (ViT-B/16 for the base "
            "preset)"
        )
    ivt_state = {
        IMAGE_EMBEDDINGS[name]: vit_state_dict[name]
        for name in ("cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias")
    }
    ivt_state[IMAGE_EMBEDDINGS["pos_embed"]] = resize_position_embedding(vit_state_dict["pos_embed"], config.grid_size)
    ivt_state |= {new: vit_state_dict[old] for old, new in FINAL_NORM.items()}
    blocks = _layer_tensors(vit_state_dict, VIT_LAYER_KEY, SHARED_BLOCK | VIT_FFN, block_key, config.num_hidden_layers)
    return ivt_state | blocks


def _bert_encoder_state(bert_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """A BERT state dict with LayerNorm `gamma` / `beta` read as `weight` / `bias` and without its `bert.` prefix,
    checked to be a BertModel layout of the model's width."""
    bert_state_dict = _strip_prefix(_legacy_layer_norm_names(bert_state_dict), "bert.")
    if "embeddings.word_embeddings.weight" not in bert_state_dict:
        raise BackboneLayoutError("BERT state dict lacks embeddings.word_embeddings.weight (not a BertModel layout)")
    width = bert_state_dict["embeddings.word_embeddings.weight"].shape[1]
    if width != config.hidden_size:
        raise BackboneLayoutError(
            f"the BERT has width {width}; this IVT model needs width {config.hidden_size} (bert-base for the base "
            "preset)"
        )
    return bert_state_dict


def bert_to_ivt_state_dict(bert_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """IVTModel tensors taken from a transformers BertModel (embeddings and the FFN of each layer)."""
    bert_state_dict = _bert_encoder_state(bert_state_dict, config)
    missing = [name for name in TEXT_EMBEDDINGS if name not in bert_state_dict]
    if missing:
        raise BackboneLayoutError(f"BERT state dict lacks {', '.join(missing)} (not a BertModel layout)")
    ivt_state = {new: bert_state_dict[old] for old, new in TEXT_EMBEDDINGS.items()}
    return ivt_state | _layer_tensors(bert_state_dict, BERT_LAYER_KEY, BERT_FFN, block_key, config.num_hidden_layers)


def bert_to_fusion_state_dict(bert_state_dict: dict[str, torch.Tensor], config: IVTConfig) -> dict[str, torch.Tensor]:
    """`IVTForPreTraining` fusion-encoder and MLM-head tensors taken from a transformers BERT (`BertModel`, or
    `BertForMaskedLM` / `BertForPreTraining` with their `bert.` prefix and `cls.predictions` head).

    BERT layers 0..fusion_num_hidden_layers-1 (self-attention, `intermediate.dense`, `output.{dense,LayerNorm}`) ->
    `fusion.layer.{i}.*`; the cross-attention has no BERT counterpart and is not returned. `cls.predictions.transform.*`
    and `cls.predictions.bias` (if present) -> `mlm_head.*`. The decoder weight is returned only when
    `config.tie_word_embeddings` is False (a copy of BERT's word embeddings); tied, it is the shared encoder's word
    embeddings, which `bert_to_ivt_state_dict` fills. LayerNorm `gamma` / `beta` names are read as `weight` / `bias`.
    """
    head_state = {
        key: value for key, value in _legacy_layer_norm_names(bert_state_dict).items() if key.startswith("cls.")
    }
    bert_state_dict = _bert_encoder_state(bert_state_dict, config)
    same_names = {part: part for part in BERT_LAYER_PARTS}  # the fusion layers carry BERT's names
    num_layers = config.fusion_num_hidden_layers
    fusion_state = _layer_tensors(bert_state_dict, BERT_LAYER_KEY, same_names, fusion_layer_key, num_layers)
    if "cls.predictions.bias" not in head_state and "cls.predictions.decoder.bias" in head_state:
        head_state["cls.predictions.bias"] = head_state["cls.predictions.decoder.bias"]  # the same tied tensor
    fusion_state |= {new: head_state[old] for old, new in BERT_MLM_HEAD.items() if old in head_state}
    if not config.tie_word_embeddings:
        fusion_state[MLM_DECODER_WEIGHT] = bert_state_dict["embeddings.word_embeddings.weight"]
    return fusion_state


def load_backbones(
    model: IVTModel | IVTForPreTraining,
    vit_state_dict: dict[str, torch.Tensor] | None = None,
    bert_state_dict: dict[str, torch.Tensor] | None = None,
) -> list[str]:
    """Copy backbone weights into `model` in place; returns the keys of `model` that were set. Shapes are checked.

    An `IVTForPreTraining` gets the encoder tensors under `ivt.`, and from the BERT also its fusion encoder (BERT's
    first `fusion_num_hidden_layers` layers; cross-attention untouched) and its MLM head (`bert_to_fusion_state_dict`).
    """
    pretraining = isinstance(model, IVTForPreTraining)
    prefix = PRETRAINING_ENCODER_PREFIX if pretraining else ""
    new_state: dict[str, torch.Tensor] = {}
    if vit_state_dict is not None:
        new_state.update(
            {prefix + key: value for key, value in vit_to_ivt_state_dict(vit_state_dict, model.config).items()}
        )
    if bert_state_dict is not None:
        new_state.update(
            {prefix + key: value for key, value in bert_to_ivt_state_dict(bert_state_dict, model.config).items()}
        )
        if pretraining:
            new_state.update(bert_to_fusion_state_dict(bert_state_dict, model.config))
    own_state = model.state_dict()
    check_state_fits(new_state, own_state, BackboneLayoutError, origin="the backbones", partial=True)
    with torch.no_grad():
        for key, tensor in new_state.items():
            own_state[key].copy_(tensor)
    logger.info("initialised %d tensors from backbones", len(new_state))
    if pretraining and bert_state_dict is not None:
        head = sorted(key for key in new_state if key.startswith("mlm_head."))
        layers = model.config.fusion_num_hidden_layers
        logger.info(
            "fusion encoder: %s (self-attention, feed-forward, LayerNorms; cross-attention keeps its random init); "
            "MLM head: %s",
            f"layers 0-{layers - 1} from BERT layers 0-{layers - 1}" if layers else "no layers",
            ", ".join(head) if head else "nothing from BERT (no cls.predictions in its state dict), random init",
        )
    return sorted(new_state)


# ---- reading a backbone from a file, a folder or the Hub -------------------------------------------------------------

# preferred first; an `*.index.json` (transformers' sharded checkpoints) names its shard files beside it
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
EXPECTED = {
    "vit": "a ViT-B/16 (a transformers ViT with model_type 'vit', e.g. google/vit-base-patch16-224-in21k, or a timm "
    "vit_* repo, e.g. timm/vit_base_patch16_224.orig_in21k_ft_in1k)",
    "bert": "a BERT (model_type 'bert', e.g. google-bert/bert-base-uncased)",
}


def _check_backbone_config(config: Any, kind: Literal["vit", "bert"], source: str, config_file: str) -> None:
    """Refuse another kind of model by its config.json (transformers `model_type`, or timm `architecture`), and a
    config.json that names neither: it gives no evidence of the kind. No config.json at all (None) is accepted."""
    if config is None:
        return
    model_type = config.get("model_type") if isinstance(config, dict) else None
    architecture = config.get("architecture") if isinstance(config, dict) else None
    if not model_type and not architecture:
        raise BackboneLayoutError(
            f"{config_file} names no model_type (a transformers config) or architecture (a timm config), so nothing "
            f"says it holds {EXPECTED[kind]}; fix its config.json, or pass the weights file itself"
        )
    if kind == "vit":
        fits = model_type == "vit" if model_type else str(architecture).startswith("vit_")
    else:
        fits = model_type == "bert" and architecture is None
    if not fits:
        found = f"model_type {model_type!r}" if model_type else f"timm architecture {architecture!r}"
        raise BackboneLayoutError(f"{source} holds a model with {found}; expected {EXPECTED[kind]}")


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as error:  # truncated, or not safetensors at all
            raise BackboneLayoutError(
                f"{path} is not a readable safetensors file ({error}); download it again, or pass another checkpoint"
            ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    except Exception as error:
        raise BackboneLayoutError(f"{path} is not a tensors-only checkpoint ({type(error).__name__})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise BackboneLayoutError(f"{path} does not hold a state dict of tensors")
    return loaded


def _shard_names(index_path: Path, shown: str) -> list[str]:
    """The shard files that a sharded checkpoint's `*.index.json` maps tensors to (`weight_map`), in order."""
    try:
        shards = list(dict.fromkeys(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        shards, reason = [], f"{type(error).__name__}: {error}"
    else:
        reason = "no shards" if not shards else "a shard that is not a file name beside it"
    # a shard is a plain file name beside the index: never a path that leaves the folder or the repo
    if not shards or not all(
        isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name for name in shards
    ):
        raise BackboneLayoutError(
            f"{shown} is not a shard index (a JSON object whose weight_map maps each tensor to a shard file): {reason}"
        )
    return shards


def _local_weight_files(weights: Path) -> list[Path]:
    """A weights file, or the shards beside a sharded checkpoint's `*.index.json`."""
    if not weights.name.endswith(".index.json"):
        return [weights]
    shards = [weights.parent / name for name in _shard_names(weights, str(weights))]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        raise InputNotFoundError(
            f"{weights} names the shard {missing[0]}, which is not in {weights.parent}"
            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    return shards


def _not_cached(repo_id: str, revision: str | None, files: str) -> InputNotFoundError:
    """Files of a Hub repo that are neither in the local cache nor downloadable: offline mode or no network."""
    from huggingface_hub import constants

    where = f"{repo_id}" + (f" at revision {revision}" if revision else "")
    cache = f"the local Hub cache ({constants.HF_HUB_CACHE})"
    if constants.is_offline_mode():
        return InputNotFoundError(
            f"{where}: {files} in {cache} and HF_HUB_OFFLINE is set, so the Hub was not asked: download the backbone "
            f"once with network access (unset HF_HUB_OFFLINE, or run `hf download {repo_id}`), or pass a local file "
            "or folder"
        )
    return InputNotFoundError(
        f"{where}: {files} in {cache} and the Hub ({constants.ENDPOINT}) cannot be reached: check the network (or "
        "HF_ENDPOINT), or pass a local file or folder"
    )


def _from_hub(repo_id: str, revision: str | None) -> tuple[Path | None, list[Path]]:
    """config.json (if the repo has one) and the weight files of the first of `WEIGHT_FILES` the repo has (its
    shards for an index), downloaded through huggingface_hub (its cache; `HF_HUB_OFFLINE=1` reads only the cache;
    the token from `HF_TOKEN`)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    not_cached: list[str] = []  # files neither in the cache nor downloadable (offline, or no network)

    def fetch(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision))
        except RepositoryNotFoundError:
            raise InputNotFoundError(
                f"no Hub repo {repo_id!r} (or it is private or gated: log in or set HF_TOKEN)"
            ) from None
        except RevisionNotFoundError:
            raise InputNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}") from None
        except LocalEntryNotFoundError:  # before EntryNotFoundError, its base class
            not_cached.append(filename)
            return None
        except EntryNotFoundError:
            return None
        except HfHubHTTPError as error:
            raise InputNotFoundError(f"the Hub refused {repo_id}/{filename}: {error}") from None

    config = fetch("config.json")
    for name in WEIGHT_FILES:
        weights = fetch(name)
        if weights is None:
            continue
        if "config.json" in not_cached:
            logger.warning(
                "%s/config.json is not in the local Hub cache: the backbone's kind is checked by its tensor names only",
                repo_id,
            )
        if not name.endswith(".index.json"):
            return config, [weights]
        shards = []
        for shard in _shard_names(weights, f"{repo_id}/{name}"):
            shard_path = fetch(shard)
            if shard_path is None and shard in not_cached:
                raise _not_cached(repo_id, revision, f"the shard {shard} named by {name} is not")
            if shard_path is None:
                raise InputNotFoundError(f"{repo_id}/{name} names the shard {shard}, which is not in the repo")
            shards.append(shard_path)
        return config, shards
    if any(name in not_cached for name in WEIGHT_FILES):
        raise _not_cached(repo_id, revision, f"none of {', '.join(WEIGHT_FILES)} is")
    raise InputNotFoundError(f"Hub repo {repo_id!r} has none of {', '.join(WEIGHT_FILES)}")


def read_backbone(
    source: str | Path, kind: Literal["vit", "bert"], *, revision: str | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a public backbone from a weights file (or a sharded checkpoint's `*.index.json`), a local
    folder (config.json + weights, or + index and shards) or a Hub repo id. A config that names another kind of
    model or no kind at all, unreadable weights, or weights of the wrong layout are errors naming `source` or the
    file."""
    if kind not in EXPECTED:
        raise IVTInputError(f"kind must be 'vit' or 'bert', got {kind!r}")
    path = Path(source).expanduser()
    if path.is_file():
        config_path, weights = None, _local_weight_files(path)
    elif path.is_dir():
        config_path = path / "config.json" if (path / "config.json").is_file() else None
        found = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
        if found is None:
            raise InputNotFoundError(f"{path} holds none of {', '.join(WEIGHT_FILES)}")
        weights = _local_weight_files(found)
    elif str(source).startswith((".", "/", "~")) or str(source).count("/") > 1:
        raise InputNotFoundError(f"backbone not found: {source}")
    else:
        config_path, weights = _from_hub(str(source), revision)
    config = None
    if config_path is not None:
        config_file = str(config_path) if path.is_dir() else f"{source}/config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BackboneLayoutError(f"{config_file} is not valid JSON ({error})") from None
        _check_backbone_config(config, kind, str(source), config_file)
    state_dict: dict[str, torch.Tensor] = {}
    for weights_file in weights:
        state_dict |= _load_weights(weights_file)
    return state_dict


__all__ = [
    "BackboneLayoutError",
    "read_backbone",
    "bert_to_fusion_state_dict",
    "bert_to_ivt_state_dict",
    "load_backbones",
    "resize_position_embedding",
    "timm_vit_from_transformers_layout",
    "vit_to_ivt_state_dict",
]
