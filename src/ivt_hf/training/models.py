"""The one model builder of both stages: `build_model(IVTModel, model_args)` for fine-tuning (`ivt train`),
`build_model(IVTForPreTraining, model_args, **itc_settings)` for pre-training (`ivt pretrain`).

A model comes from, in this order of precedence:
- `--model_name_or_path`: a saved folder or Hub id. Fine-tuning from a pre-training output keeps its encoder
  (`conversion.encoder_from_pretraining`: fusion encoder and heads dropped, the position grid resized to a new stride
  or image size); pre-training from a retrieval model's folder starts the fusion encoder and heads afresh. Settings
  equal to the saved architecture are accepted (a recipe may state them); a real change is refused;
- `--config_path`, an `IVTConfig` JSON, or `--model_preset` (`IVTConfig.from_preset`), with the architecture flags
  on top, then optionally `--vit_checkpoint` / `--bert_checkpoint` (public backbones; in pre-training BERT's layers
  0-5 and MLM head also start the fusion encoder and its head).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomic import read_json_object
from ..conversion.backbones import BackboneLayoutError, load_backbones, read_backbone
from ..conversion.pretraining_transfer import encoder_from_pretraining, is_pretraining_folder
from ..errors import InputNotFoundError, IVTInputError
from ..hub.folder import check_weights
from ..model.configuration_ivt import PRESETS, IVTConfig
from ..model.modeling_ivt import IVTForPreTraining, IVTModel
from .arguments import ModelArguments

ARCHITECTURE = ("patch_stride", "image_size", "num_hidden_layers")


def build_model(
    model_class: type[IVTModel] | type[IVTForPreTraining], model_args: ModelArguments, **config_overrides: Any
) -> IVTModel | IVTForPreTraining:
    """A new or loaded `model_class` as `model_args` describe it (see the module docstring). `config_overrides` are
    further `IVTConfig` settings of the stage (pre-training's ITC settings)."""
    if model_args.attn_implementation not in (None, "eager", "sdpa"):
        raise IVTInputError(f"--attn_implementation must be 'eager' or 'sdpa', got {model_args.attn_implementation!r}")
    overrides = _config_overrides(model_args) | config_overrides
    if model_args.model_name_or_path:
        model = _load(model_class, model_args.model_name_or_path, overrides, model_args)
    else:
        model = model_class(_new_config(model_args, overrides))
        _start_from_backbones(model, model_args)
    if model_args.attn_implementation is not None:
        model.set_attn_implementation(model_args.attn_implementation)
    return model


def _config_overrides(model_args: ModelArguments) -> dict[str, Any]:
    """The `IVTConfig` settings the flags give (those left unset are not overrides)."""
    overrides = {
        key: getattr(model_args, key)
        for key in ("patch_stride", "token_drop_ratio", "token_drop_mode", "initializer_range", "num_hidden_layers")
        if getattr(model_args, key) is not None
    }
    if model_args.image_height or model_args.image_width:
        if not (model_args.image_height and model_args.image_width):
            raise IVTInputError("give both --image_height and --image_width")
        overrides["image_size"] = (model_args.image_height, model_args.image_width)
    return overrides


def _new_config(model_args: ModelArguments, overrides: dict[str, Any]) -> IVTConfig:
    if model_args.config_path:
        config = _read_config_file(model_args.config_path)
        for key, value in overrides.items():
            setattr(config, key, list(value) if key == "image_size" else value)
        config.validate_ivt()
        return config
    if model_args.model_preset not in PRESETS:  # the flag's own message: it names --model_preset
        raise IVTInputError(f"--model_preset must be one of {sorted(PRESETS)}, got {model_args.model_preset!r}")
    return IVTConfig.from_preset(model_args.model_preset, **overrides)


def _read_config_file(path: str) -> IVTConfig:
    """The `IVTConfig` of a `--config_path` JSON file; one error naming the file when it is missing, not JSON, or not
    one object of settings."""
    config_path = Path(path)
    if not config_path.is_file():
        raise InputNotFoundError(f"--config_path {path}: no such file (an IVTConfig JSON)")
    settings = read_json_object(
        config_path, name=f"--config_path {path}", holds="one JSON object of IVTConfig settings"
    )
    return IVTConfig(**settings)


def _start_from_backbones(model: IVTModel | IVTForPreTraining, model_args: ModelArguments) -> None:
    for kind, source in (("vit", model_args.vit_checkpoint), ("bert", model_args.bert_checkpoint)):
        if source:
            try:
                state_dict = read_backbone(source, kind, revision=model_args.backbone_revision)
                load_backbones(model, **{f"{kind}_state_dict": state_dict})
            except BackboneLayoutError as error:
                raise BackboneLayoutError(f"--{kind}_checkpoint {source}: {error}") from None
            except InputNotFoundError as error:
                raise InputNotFoundError(f"--{kind}_checkpoint {source}: {error}") from None


def _load(
    model_class: type[IVTModel] | type[IVTForPreTraining],
    model_name_or_path: str,
    overrides: dict[str, Any],
    model_args: ModelArguments,
) -> IVTModel | IVTForPreTraining:
    for flag in ("vit_checkpoint", "bert_checkpoint"):
        if getattr(model_args, flag):
            raise IVTInputError(f"--{flag} starts a new model; it cannot apply to --model_name_or_path")
    if Path(model_name_or_path).is_dir():
        check_weights(model_name_or_path)  # safetensors only, readable: a pickle is refused, never unpickled
    if model_class is IVTModel and is_pretraining_folder(model_name_or_path):
        # its encoder, the position grid resized when --patch_stride / --image_* change it
        overrides = _without_unchanged_architecture(model_name_or_path, overrides, ("num_hidden_layers",))
        return encoder_from_pretraining(model_name_or_path, **overrides)[0]
    overrides = _without_unchanged_architecture(model_name_or_path, overrides, ARCHITECTURE)
    if model_class is IVTModel:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(model_name_or_path, use_safetensors=True, **overrides)
        if not isinstance(model, IVTModel):
            raise IVTInputError(f"--model_name_or_path {model_name_or_path} holds a {type(model).__name__}")
    else:
        model = model_class.from_pretrained(model_name_or_path, use_safetensors=True, **overrides)
    model.config.validate_ivt()  # the overrides (e.g. --token_drop_mode) bypass the config's own __init__
    return model


def _without_unchanged_architecture(
    model_name_or_path: str, overrides: dict[str, Any], fixed: tuple[str, ...]
) -> dict[str, Any]:
    """`overrides` without the architecture settings that equal the saved model's (a recipe may state the
    architecture it was written for: `synthpedes-cpu.json`'s `num_hidden_layers`); a setting in `fixed` that differs
    is refused, naming the saved and the asked value."""
    asked = {key: overrides[key] for key in fixed if key in overrides}
    if not asked:
        return overrides
    saved = IVTConfig.from_pretrained(model_name_or_path)
    kept = dict(overrides)
    for key, value in asked.items():
        current = tuple(saved.image_size) if key == "image_size" else getattr(saved, key)
        if (tuple(value) if key == "image_size" else value) != current:
            flag = "--image_height/--image_width" if key == "image_size" else f"--{key}"
            raise IVTInputError(
                f"{flag} {value} cannot change the architecture of --model_name_or_path {model_name_or_path} "
                f"({key} {current}); leave it out, or start a new model"
            )
        del kept[key]
    return kept


__all__ = ["build_model"]
