"""Convert the IVT authors' checkpoints into an `IVTModel` (and a `save_pretrained` folder).

The reference training code saves a legacy pickle `{'state_dict', 'optimizer', 'epoch', 'best_acc'}` whose encoder
keys start with `encoder_vl.` (and `module.` after DDP training); a pre-training checkpoint adds `encoder_fusion.*`,
`itm.*` and `temp`. Only tensors are read (`torch.load(..., weights_only=True)`); every width and the patch stride come
from the tensor shapes, and every key that is not used is reported, never silently ignored.

`convert_original_checkpoint` gives the retrieval encoder (`IVTModel`) of either kind of checkpoint;
`convert_original_pretraining_checkpoint` gives the whole pre-training model (`IVTForPreTraining`) of a pre-training
checkpoint, heads included.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InputNotFoundError, IVTInputError
from ..hub.folder import save_model_folder
from ..model.configuration_ivt import IVTConfig
from ..model.modeling_ivt import IVTForPreTraining, IVTModel, exact_log
from ..model.processing_ivt import IVTProcessor
from .key_map import (
    BLOCK_KEY,
    MLM_DECODER_WEIGHT,
    REFERENCE_FUSION_EMBEDDINGS,
    REFERENCE_FUSION_LAYER_KEY,
    REFERENCE_FUSION_PREFIX,
    REFERENCE_FUSION_WORD_EMBEDDINGS,
    REFERENCE_MLM_DECODER_BIAS,
    REFERENCE_MLM_DECODER_WEIGHT,
    hf_to_reference_pretraining_key,
    reference_pretraining_to_hf_key,
    reference_to_hf_key,
)
from .state_check import check_state_fits, first_keys

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "encoder_vl."
# keys of the reference model that the retrieval encoder does not use (classifier, BN neck, temperature, the
# pre-training fusion encoder and image-text matching head) and the text-position buffer
KNOWN_UNUSED_PREFIXES = ("temp", "classifier_img.", "bottleneck_img.", "encoder_fusion.", "itm.")
KNOWN_UNUSED_ENCODER_KEYS = ("embeddings.position_ids",)
# the fine-tuning model's heads, which a pre-training checkpoint does not have but may carry along
FINE_TUNING_HEAD_PREFIXES = ("classifier_img.", "bottleneck_img.")


class CheckpointConversionError(IVTInputError):
    """The file is not an IVT checkpoint this converter understands; the message says what does not fit."""


@dataclass
class ConversionReport:
    config: IVTConfig
    dropped_keys: list[str] = field(default_factory=list)
    source_format: str = ""
    architecture: str = "IVTModel"  # or "IVTForPreTraining" (with the pre-training heads)
    warnings: list[str] = field(default_factory=list)  # logged as they are found (`vocabulary_mismatch`)

    def summary(self) -> str:
        grid_y, grid_x = self.config.grid_size
        lines = [
            f"format: {self.source_format}",
            f"hidden {self.config.hidden_size}, layers {self.config.num_hidden_layers}, heads "
            f"{self.config.num_attention_heads}, intermediate {self.config.intermediate_size}, vocab "
            f"{self.config.vocab_size}, text positions {self.config.max_position_embeddings}",
            f"image {tuple(self.config.image_size)}, patch {self.config.patch_size}, stride "
            f"{self.config.patch_stride} ({grid_y} x {grid_x} patches)",
            f"dropped {len(self.dropped_keys)} unused keys: {', '.join(self.dropped_keys) or '-'}",
        ]
        if self.architecture == "IVTForPreTraining":
            range_note = "free" if self.config.itc_temperature_range is None else "clamped"
            lines.insert(
                3,
                f"pre-training heads: fusion encoder {self.config.fusion_num_hidden_layers} layers, itm_head, "
                f"mlm_head ({'tied' if self.config.tie_word_embeddings else 'own'} decoder), temperature "
                f"{self.config.itc_temperature:g} ({range_note}), ITC on "
                f"{'normalised' if self.config.itc_normalize else 'raw'} CLS vectors",
            )
        return "\n".join(lines)


def load_reference_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Read a reference checkpoint with `weights_only=True`; unwrap `{'state_dict': ...}` and strip `module.`."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"checkpoint not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        if error.errno is None:
            raise CheckpointConversionError(f"{path} could not be read as a torch checkpoint: {error}") from error
        raise  # the machine refused (a file the user may not read): `ivt` says so, exit 3, not "not a checkpoint"
    except Exception as error:  # an object other than tensors, a zip of something else, a truncated file
        # torch's own message suggests weights_only=False, which would run arbitrary code: never offer that
        raise CheckpointConversionError(
            f"{path} could not be read as a tensors-only torch checkpoint (weights_only=True): it holds objects other "
            f"than tensors and plain containers, or is not a torch file ({type(error).__name__})"
        ) from error
    source_format = "bare state dict"
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded, source_format = loaded["state_dict"], "training checkpoint {'state_dict', ...}"
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise CheckpointConversionError(f"{path} does not hold a state dict of tensors (got {type(loaded).__name__})")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key[len("module.") :]: value for key, value in loaded.items()}
        source_format += ", DDP 'module.' prefix"
    return loaded, source_format


def infer_patch_stride(num_positions: int, image_size: tuple[int, int], patch_size: int) -> int:
    """Solve `((H - patch) // s + 1) * ((W - patch) // s + 1) == num_positions - 1` for the stride s."""
    height, width = image_size
    fitting = [
        stride
        for stride in range(1, max(height, width) + 1)
        if ((height - patch_size) // stride + 1) * ((width - patch_size) // stride + 1) == num_positions - 1
    ]
    if not fitting:
        raise CheckpointConversionError(
            f"pos_embed has {num_positions} positions, which fits no patch stride for image size {tuple(image_size)} "
            f"and patch size {patch_size} (311 -> stride 12 and 193 -> stride 16 at 384x128); pass the image_size "
            "the checkpoint was trained at"
        )
    if len(fitting) > 1:
        logger.warning("pos_embed length %d fits strides %s; using %d", num_positions, fitting, fitting[-1])
    return fitting[-1]


def config_from_reference_state_dict(
    encoder_state: dict[str, torch.Tensor],
    image_size: tuple[int, int] = (384, 128),
    num_attention_heads: int | None = None,
    **config_overrides,
) -> IVTConfig:
    """Build an `IVTConfig` from tensor shapes. Heads cannot be read off shapes: default hidden // 64 (ViT-B)."""
    required = (
        "pos_embed",
        "patch_embed.proj.weight",
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "blocks.0.mlp_vis.fc1.weight",
    )
    missing = [key for key in required if key not in encoder_state]
    if missing:
        raise CheckpointConversionError(
            f"not an IVT encoder: missing {', '.join(ENCODER_PREFIX + key for key in missing)}"
        )
    hidden_size = encoder_state["pos_embed"].shape[-1]
    patch_weight = encoder_state["patch_embed.proj.weight"]  # (hidden, channels, patch, patch)
    if patch_weight.shape[-1] != patch_weight.shape[-2]:
        raise CheckpointConversionError(f"patch_embed.proj.weight is not square: {tuple(patch_weight.shape)}")
    num_layers = 1 + max(int(match.group(1)) for key in encoder_state if (match := BLOCK_KEY.match(key)))
    if num_attention_heads is None:
        if hidden_size % 64:
            raise CheckpointConversionError(
                f"hidden size {hidden_size} is not a multiple of 64, so the head count cannot be assumed; pass "
                "num_attention_heads"
            )
        num_attention_heads = hidden_size // 64
    patch_size = patch_weight.shape[-1]
    return IVTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=encoder_state["blocks.0.mlp_vis.fc1.weight"].shape[0],
        vocab_size=encoder_state["embeddings.word_embeddings.weight"].shape[0],
        max_position_embeddings=encoder_state["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=encoder_state["embeddings.token_type_embeddings.weight"].shape[0],
        image_size=tuple(image_size),
        patch_size=patch_size,
        patch_stride=infer_patch_stride(encoder_state["pos_embed"].shape[1], image_size, patch_size),
        num_channels=patch_weight.shape[1],
        qkv_bias="blocks.0.attn.qkv.bias" in encoder_state,
        **config_overrides,
    )


def convert_original_checkpoint(
    path: str | Path,
    *,
    image_size: tuple[int, int] = (384, 128),
    num_attention_heads: int | None = None,
    **config_overrides,
) -> tuple[IVTModel, ConversionReport]:
    """Load an authors' checkpoint (fine-tune or pre-train, with or without `module.`) into a new `IVTModel`.

    Returns the model in eval mode and a report of the inferred config and the dropped keys. Raises
    `CheckpointConversionError` on keys it does not know, missing encoder tensors or shapes that do not fit.
    """
    state, source_format = load_reference_state_dict(path)
    encoder_state: dict[str, torch.Tensor] = {}
    dropped, unknown = [], []
    for key, tensor in state.items():
        if key.startswith(ENCODER_PREFIX):
            name = key[len(ENCODER_PREFIX) :]
            if name in KNOWN_UNUSED_ENCODER_KEYS:
                dropped.append(key)
            elif reference_to_hf_key(name) is None:
                unknown.append(key)
            else:
                encoder_state[name] = tensor
        elif key.startswith(KNOWN_UNUSED_PREFIXES):
            dropped.append(key)
        else:
            unknown.append(key)
    _refuse_unknown_keys(unknown, path, "IVT encoder weights nor known unused heads")
    config = config_from_reference_state_dict(encoder_state, image_size, num_attention_heads, **config_overrides)
    model = IVTModel(config)
    converted = {reference_to_hf_key(name): tensor for name, tensor in encoder_state.items()}
    _check_converted_fits(converted, model, path, tensors="encoder tensors")
    report = ConversionReport(config=config, dropped_keys=sorted(dropped), source_format=source_format)
    return _load_converted(model, converted, path, report)


def _refuse_unknown_keys(unknown: list[str], path: str | Path, known: str) -> None:
    """One error naming the first keys that are neither `known`: never a key silently ignored."""
    if unknown:
        raise CheckpointConversionError(
            f"{path}: {len(unknown)} unexpected keys that are neither {known}: {first_keys(sorted(unknown))}"
        )


def _check_converted_fits(converted: dict[str, torch.Tensor], model: torch.nn.Module, path: str | Path, **options):
    """`check_state_fits` of the converted tensors against the model of the config inferred from them."""
    check_state_fits(
        converted,
        model.state_dict(),
        CheckpointConversionError,
        origin=str(path),
        shape_note=" (inferred config)",
        **options,
    )


def _load_converted(model, converted: dict[str, torch.Tensor], path: str | Path, report: ConversionReport):
    """Load the checked tensors (strict), put the model in eval mode and log the report: both converters' end."""
    model.load_state_dict(converted, strict=True)
    model.eval()
    logger.info("converted %s\n%s", path, report.summary())
    return model, report


def _pretraining_tensors(
    state: dict[str, torch.Tensor], path: str | Path
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Split an authors' pre-training state dict: (encoder tensors by reference name without `encoder_vl.`,
    `IVTForPreTraining` tensors by IVT name, dropped keys). Unknown keys and an untied decoder bias are errors."""
    encoder_state: dict[str, torch.Tensor] = {}
    converted: dict[str, torch.Tensor] = {}
    dropped, unknown = [], []
    for key, tensor in state.items():
        if key.startswith(ENCODER_PREFIX) and key[len(ENCODER_PREFIX) :] in KNOWN_UNUSED_ENCODER_KEYS:
            dropped.append(key)
        elif key in (REFERENCE_FUSION_WORD_EMBEDDINGS, REFERENCE_MLM_DECODER_BIAS):
            continue  # tied duplicates of the MLM decoder's weight and bias, handled below
        elif (name := reference_pretraining_to_hf_key(key)) is not None:
            converted[name] = tensor
            if key.startswith(ENCODER_PREFIX):
                encoder_state[key[len(ENCODER_PREFIX) :]] = tensor
        elif key.startswith((REFERENCE_FUSION_EMBEDDINGS, *FINE_TUNING_HEAD_PREFIXES)):
            dropped.append(key)  # the fusion BERT's own embeddings are not used in fusion mode
        else:
            unknown.append(key)
    _refuse_unknown_keys(unknown, path, "IVT pre-training weights nor known unused tensors")

    # the MLM decoder: its weight is tied to the fusion BERT's word embeddings, its bias to `predictions.bias`
    word_embeddings = state.get(REFERENCE_FUSION_WORD_EMBEDDINGS)
    if MLM_DECODER_WEIGHT not in converted and word_embeddings is not None:
        converted[MLM_DECODER_WEIGHT] = word_embeddings
    elif word_embeddings is not None and not torch.equal(word_embeddings, converted[MLM_DECODER_WEIGHT]):
        logger.warning(
            "%s: %s differs from %s (not tied); the decoder weight is used, the embedding table dropped",
            path,
            REFERENCE_FUSION_WORD_EMBEDDINGS,
            REFERENCE_MLM_DECODER_WEIGHT,
        )
        dropped.append(REFERENCE_FUSION_WORD_EMBEDDINGS)
    decoder_bias, bias_key = state.get(REFERENCE_MLM_DECODER_BIAS), "encoder_fusion.cls.predictions.bias"
    if decoder_bias is not None:
        if "mlm_head.decoder.bias" not in converted:
            converted["mlm_head.decoder.bias"] = decoder_bias
        elif not torch.equal(decoder_bias, converted["mlm_head.decoder.bias"]):
            raise CheckpointConversionError(
                f"{path}: {REFERENCE_MLM_DECODER_BIAS} differs from {bias_key}; in the authors' model they are one "
                "tied tensor, so this checkpoint has been altered and its MLM decoder bias is ambiguous"
            )
    return encoder_state, converted, dropped


def convert_original_pretraining_checkpoint(
    path: str | Path,
    *,
    image_size: tuple[int, int] = (384, 128),
    num_attention_heads: int | None = None,
    **config_overrides,
) -> tuple[IVTForPreTraining, ConversionReport]:
    """Load an authors' pre-training checkpoint (`encoder_vl.*`, `encoder_fusion.*`, `itm.*`, `temp`; with or without
    `module.`) into a new `IVTForPreTraining`, heads included.

    Key map: `encoder_vl.*` -> `ivt.*` (as `convert_original_checkpoint`); `encoder_fusion.bert.encoder.layer.{i}.*`
    -> `fusion.layer.{i}.*`; `encoder_fusion.cls.predictions.{transform.*, decoder.weight, bias}` ->
    `mlm_head.{transform.*, decoder.weight, decoder.bias}`; `itm.*` -> `itm_head.*`; `temp` -> `log_temperature`
    (`exact_log`: its exponential is `temp` bit for bit, so the ITC divides by their very number). Without
    `...predictions.decoder.weight` the decoder takes the fusion BERT's word-embedding table it is tied to; a
    `...predictions.decoder.bias` must equal `...predictions.bias`. The rest of the fusion BERT's embeddings is unused
    in fusion mode and reported in `dropped_keys` (the word-embedding table only when it differs from the decoder).

    The config reproduces the authors' pre-training: `tie_word_embeddings=False` (their decoder is not the shared
    encoder's embedding table), ITC on raw CLS vectors (`itc_normalize=False`), `itc_temperature` = the value of
    `temp`, no clamping (`itc_temperature_range=None`), `fusion_layer_norm_eps=1e-12`, `fusion_num_hidden_layers`
    counted from the keys; `config_overrides` win over these. Returns the model in eval mode and the report.

    Raises:
        CheckpointConversionError: a fine-tuning checkpoint (no `encoder_fusion.*`), unknown keys, missing tensors or
            shapes that do not fit (the message names the key).
    """
    state, source_format = load_reference_state_dict(path)
    if not any(key.startswith(REFERENCE_FUSION_PREFIX) for key in state):
        raise CheckpointConversionError(
            f"{path} holds no pre-training heads (no encoder_fusion.* keys): it is a fine-tuning checkpoint; convert "
            "it with the fine-tuning conversion (convert_original_checkpoint, or `ivt convert` without --pretraining)"
        )
    encoder_state, converted, dropped = _pretraining_tensors(state, path)
    fusion_num_hidden_layers = _count_fusion_layers(state, path)
    temperature = _reference_temperature(converted, path)
    converted["log_temperature"] = exact_log(temperature.reshape(()).float())
    pretraining_config = {
        "fusion_num_hidden_layers": fusion_num_hidden_layers,
        "fusion_layer_norm_eps": 1e-12,
        "tie_word_embeddings": False,
        "itc_normalize": False,
        "itc_temperature": float(temperature),
        "itc_temperature_range": None,
    }
    config = config_from_reference_state_dict(
        encoder_state, image_size, num_attention_heads, **(pretraining_config | config_overrides)
    )
    model = IVTForPreTraining(config)
    # an extra tensor is e.g. an MLM decoder whose config says it is tied
    _check_converted_fits(converted, model, path, describe=_with_reference_name)
    word_embeddings_key = "ivt.text_embeddings.word_embeddings.weight"
    if config.tie_word_embeddings and not torch.equal(converted[MLM_DECODER_WEIGHT], converted[word_embeddings_key]):
        raise CheckpointConversionError(
            f"{path}: tie_word_embeddings=True would make the MLM decoder the shared encoder's word embeddings, but "
            f"the checkpoint's decoder ({REFERENCE_MLM_DECODER_WEIGHT}) differs from them; keep the default False"
        )
    report = ConversionReport(
        config=config, dropped_keys=sorted(dropped), source_format=source_format, architecture="IVTForPreTraining"
    )
    return _load_converted(model, converted, path, report)


def _count_fusion_layers(state: dict[str, torch.Tensor], path: str | Path) -> int:
    """The fusion encoder's depth, from its highest `encoder_fusion.bert.encoder.layer.{i}` key."""
    fusion_layers = {int(match.group(1)) for key in state if (match := REFERENCE_FUSION_LAYER_KEY.match(key))}
    if not fusion_layers:
        raise CheckpointConversionError(
            f"{path}: the checkpoint has encoder_fusion.* keys but no fusion encoder layers "
            "(encoder_fusion.bert.encoder.layer.{i}.*)"
        )
    return max(fusion_layers) + 1


def _reference_temperature(converted: dict[str, torch.Tensor], path: str | Path) -> torch.Tensor:
    """The authors' `temp` (still stored as `log_temperature` by the key map): one positive number, or an error."""
    temperature = converted.get("log_temperature")
    if temperature is None or temperature.numel() != 1 or not float(temperature) > 0:
        found = "missing" if temperature is None else f"shape {tuple(temperature.shape)}, value {temperature.tolist()}"
        raise CheckpointConversionError(f"{path}: temp must be one positive number (the ITC temperature); {found}")
    return temperature


def _with_reference_name(name: str) -> str:
    """An `IVTForPreTraining` key as an error names it: with the reference key it comes from."""
    reference = hf_to_reference_pretraining_key(name)
    if name == MLM_DECODER_WEIGHT:
        reference = f"{REFERENCE_MLM_DECODER_WEIGHT} (or {REFERENCE_FUSION_WORD_EMBEDDINGS})"
    return f"{name} (from {reference})" if reference else name


def convert_to_folder(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    *,
    image_size: tuple[int, int] = (384, 128),
    num_attention_heads: int | None = None,
    vocab_file: str | Path | None = None,
    pretraining: bool = False,
) -> ConversionReport:
    """Convert and write a `from_pretrained` folder with the model, the processor and `auto_map` for remote code.

    `pretraining=True` converts a pre-training checkpoint into an `IVTForPreTraining` folder (heads included;
    `AutoModelForPreTraining` loads it whole, `AutoModel` its encoder); otherwise the folder holds the `IVTModel`
    retrieval encoder of either kind of checkpoint.
    """
    if vocab_file is not None:
        check_vocab_file(vocab_file)
    convert = convert_original_pretraining_checkpoint if pretraining else convert_original_checkpoint
    model, report = convert(checkpoint_path, image_size=image_size, num_attention_heads=num_attention_heads)
    with warnings.catch_warnings():  # the processor's own size warning: said below, with the checkpoint's name
        warnings.filterwarnings("ignore", message="the tokenizer has", category=UserWarning)
        processor = IVTProcessor.from_config(model.config, vocab_file=vocab_file)
    mismatch = vocabulary_mismatch(len(processor.tokenizer), model.config.vocab_size, checkpoint_path, vocab_file)
    if mismatch is not None:
        logger.warning(mismatch)
        report.warnings.append(mismatch)
    save_model_folder(model, processor, output_dir)
    return report


BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def check_vocab_file(vocab_file: str | Path) -> None:
    """A WordPiece vocabulary (one token a line) that the processor can use: a readable file with BERT's special
    tokens. Read here, before the conversion, so that a missing, empty or foreign file is one error naming it (a file
    the user may not read is the machine's refusal, `PermissionError`)."""
    vocab_file = Path(vocab_file)
    if not vocab_file.is_file():
        raise InputNotFoundError(f"vocab file not found: {vocab_file} (a WordPiece vocabulary, one token a line)")
    with open(vocab_file, encoding="utf-8", errors="replace") as handle:
        tokens = {line.rstrip("\n") for line in handle}
    missing = [token for token in BERT_SPECIAL_TOKENS if token not in tokens]
    if missing:
        raise IVTInputError(
            f"{vocab_file} is not a BERT WordPiece vocabulary: it lacks {', '.join(missing)} (one token a line)"
        )


def vocabulary_mismatch(
    tokenizer_size: int, vocab_size: int, checkpoint_path: str | Path, vocab_file: str | Path | None
) -> str | None:
    """What a converted folder's tokenizer and word-embedding table disagree on, or None when they agree. A
    tokenizer larger than the table makes ids that have no embedding (a text using them fails in the model); a
    smaller one leaves rows no text reaches."""
    if tokenizer_size == vocab_size:
        return None
    vocabulary = f"the vocabulary {vocab_file}" if vocab_file else "the packaged bert-base-uncased vocabulary"
    table = f"{checkpoint_path}'s word-embedding table has {vocab_size} rows"
    sizes = f"{table} but {vocabulary} has {tokenizer_size} tokens"
    if tokenizer_size > vocab_size:
        return (
            f"{sizes}: token ids {vocab_size} to {tokenizer_size - 1} have no embedding, and a text that uses one "
            "fails in the model; pass --vocab_file with the vocabulary the checkpoint was trained with"
        )
    return f"{sizes}: {vocab_size - tokenizer_size} rows are never used; pass --vocab_file if that is not intended"


__all__ = [
    "CheckpointConversionError",
    "ConversionReport",
    "check_vocab_file",
    "convert_original_checkpoint",
    "convert_original_pretraining_checkpoint",
    "convert_to_folder",
    "load_reference_state_dict",
    "reference_to_hf_key",
]
