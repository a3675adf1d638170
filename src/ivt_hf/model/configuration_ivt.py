"""Configuration of IVT, the one-encoder text-based person retrieval model of Shu et al. 2022.

"See Finer, See More: Implicit Modality Alignment for Text-based Person Retrieval" (arXiv 2208.08608). One ViT-B/16
transformer encodes both images and text: attention and LayerNorms are shared, each modality has its own feed-forward
block. The defaults reproduce the reference model at 384x128 with patch stride 16 (the RSTPReid setting); CUHK-PEDES
and ICFG-PEDES use `patch_stride=12`.

The named architectures live here too (`PRESETS`, `IVTConfig.from_preset`), beside the class they configure, as
open_clip keeps its model configs with its models: the `--model_preset` flag, the benchmarks and the tests all start
from them.

This file imports only transformers (and the standard library) so that it can be copied next to saved weights and
loaded with `trust_remote_code=True` in a Python that has not installed `ivt_hf`.
"""

from __future__ import annotations

from types import MappingProxyType

from transformers import PretrainedConfig

TOKEN_DROP_MODES = ("batch", "per_sample")

# The named architectures: the settings each changes from `IVTConfig`'s defaults. Read-only views, so that a caller
# who edits one cannot change it for every later caller; `IVTConfig.from_preset` copies before it overrides.
PRESETS = MappingProxyType(
    {
        # the reference ViT-B/16 model at 384x128, stride 16: the defaults; the recipes' choice
        "base": MappingProxyType({}),
        # sized for CPU runs (the demo, the CPU recipes, the benchmarks)
        "tiny": MappingProxyType(
            dict(
                hidden_size=128,
                num_hidden_layers=4,
                num_attention_heads=4,
                intermediate_size=256,
                image_size=(128, 64),
                patch_size=16,
                patch_stride=16,
                max_position_embeddings=128,
                drop_path_rate=0.0,
                text_embedding_dropout=0.0,  # dropout costs much on CPU at these sizes; the synthetic data needs none
                fusion_num_hidden_layers=2,  # pre-training's fusion encoder (unused by the retrieval model)
                fusion_hidden_dropout=0.0,
                fusion_attention_dropout=0.0,
            )
        ),
        # the authors' fixture model's width (hidden 32, 2 layers, 2 heads) at 64x32: a forward in milliseconds on a
        # CPU, for the tests
        "micro": MappingProxyType(
            dict(
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
        ),
    }
)


class IVTInputError(ValueError):
    """A value, image, text or file that IVT refuses; the message names it. The whole package raises this type (and
    its subclasses in `ivt_hf.errors`) for input the user can fix; it lives here because this file travels with the
    weights and must stay self-contained."""


class IVTConfig(PretrainedConfig):
    r"""
    Every architecture number of IVT is a field here; there is no text/vision sub-config because one encoder serves
    both modalities.

    Args:
        hidden_size (`int`, defaults to 768): width D of the shared encoder and of the embeddings.
        num_hidden_layers (`int`, defaults to 12): number of shared pre-norm blocks.
        num_attention_heads (`int`, defaults to 12): attention heads; `hidden_size` must be divisible by it.
        intermediate_size (`int`, defaults to 3072): hidden width of BOTH feed-forward blocks (vision and text).
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation (exact, erf-based GELU in the reference).
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of the block LayerNorms and of the final LayerNorm.
        text_layer_norm_eps (`float`, defaults to 1e-12): epsilon of the text-embedding LayerNorm (BERT's).
        vocab_size (`int`, defaults to 30522): WordPiece vocabulary (bert-base-uncased).
        max_position_embeddings (`int`, defaults to 512): number of learned text positions; longer text is an error.
        type_vocab_size (`int`, defaults to 2): BERT token types (IVT always uses type 0).
        pad_token_id (`int`, defaults to 0): id of `[PAD]`.
        image_size (`tuple[int, int]`, defaults to `(384, 128)`): input (height, width).
        patch_size (`int`, defaults to 16): side of the square patch convolution kernel.
        patch_stride (`int`, defaults to 16): stride of the patch convolution; 12 gives overlapping patches (31 x 10
            tokens at 384x128), 16 gives 24 x 8.
        num_channels (`int`, defaults to 3): image channels.
        qkv_bias (`bool`, defaults to `True`): bias in the fused query/key/value projection.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth of the last block, rising linearly from 0 at the
            first block (training only).
        text_embedding_dropout (`float`, defaults to 0.1): dropout after the text-embedding LayerNorm.
        attention_dropout (`float`, defaults to 0.0): dropout on attention probabilities.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal initialisation.
        token_drop_ratio (`float`, defaults to 0.2): bidirectional mask modelling (BMM). In training only, after the
            embeddings, k tokens are removed, k drawn uniformly from 0..floor(ratio * sequence length); the CLS token
            is never removed. 0 disables it.
        token_drop_mode (`str`, defaults to `"batch"`): `"batch"` draws one set of positions for the whole batch, as
            the reference does (text padding may be "dropped" while `[SEP]` goes); `"per_sample"` draws positions per
            sample among its real (non-padding) tokens only.

    Pre-training fields (read only by [`IVTForPreTraining`], the authors' first stage; the retrieval model ignores
    them):
        fusion_num_hidden_layers (`int`, defaults to 6): BERT layers of the fusion encoder, each with self-attention
            over the text, cross-attention to the image tokens and a feed-forward block (width `intermediate_size`).
        fusion_hidden_dropout (`float`, defaults to 0.1): BERT's hidden dropout in the fusion encoder and MLM head.
        fusion_attention_dropout (`float`, defaults to 0.1): BERT's attention-probability dropout there.
        fusion_layer_norm_eps (`float`, defaults to 1e-12): BERT's LayerNorm epsilon there.
        itc_normalize (`bool`, defaults to `True`): image-text contrast on L2-normalised CLS vectors. The authors use
            the raw vectors (`False`), whose dot products reach hundreds and saturate the softmax.
        itc_temperature (`float`, defaults to 0.07): initial value of the learnable ITC temperature (the authors': 0.5).
        itc_temperature_range (`tuple[float, float]` or `None`, defaults to `(0.001, 0.5)`): the temperature is
            clamped into this range in every forward; `None` leaves it free, as the authors do. The model learns its
            logarithm (`IVTForPreTraining.log_temperature`).
        tie_word_embeddings (`bool`, defaults to `True`): the MLM decoder shares the shared encoder's word-embedding
            matrix. `False` gives it its own matrix, as the authors' checkpoints have (tied there to the fusion BERT's
            own, otherwise unused, embedding table).
    """

    model_type = "ivt"

    def __init__(
        self,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        text_layer_norm_eps: float = 1e-12,
        vocab_size: int = 30522,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        pad_token_id: int = 0,
        image_size: tuple[int, int] | list[int] = (384, 128),
        patch_size: int = 16,
        patch_stride: int = 16,
        num_channels: int = 3,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        text_embedding_dropout: float = 0.1,
        attention_dropout: float = 0.0,
        initializer_range: float = 0.02,
        token_drop_ratio: float = 0.2,
        token_drop_mode: str = "batch",
        fusion_num_hidden_layers: int = 6,
        fusion_hidden_dropout: float = 0.1,
        fusion_attention_dropout: float = 0.1,
        fusion_layer_norm_eps: float = 1e-12,
        itc_normalize: bool = True,
        itc_temperature: float = 0.07,
        itc_temperature_range: tuple[float, float] | list[float] | None = (0.001, 0.5),
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.text_layer_norm_eps = text_layer_norm_eps
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.image_size = list(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        self.num_channels = num_channels
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.text_embedding_dropout = text_embedding_dropout
        self.attention_dropout = attention_dropout
        self.initializer_range = initializer_range
        self.token_drop_ratio = token_drop_ratio
        self.token_drop_mode = token_drop_mode
        self.fusion_num_hidden_layers = fusion_num_hidden_layers
        self.fusion_hidden_dropout = fusion_hidden_dropout
        self.fusion_attention_dropout = fusion_attention_dropout
        self.fusion_layer_norm_eps = fusion_layer_norm_eps
        self.itc_normalize = itc_normalize
        self.itc_temperature = itc_temperature
        self.itc_temperature_range = list(itc_temperature_range) if itc_temperature_range is not None else None
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate_ivt()

    @classmethod
    def from_preset(cls, name: str, **overrides) -> IVTConfig:
        """The config of the named architecture in `PRESETS` (`base`, `tiny`, `micro`) with `overrides` replacing its
        settings: the one way every caller builds a preset, so a preset is spelt out once. An unknown name is one
        `IVTInputError` that lists the known ones."""
        if not isinstance(name, str) or name not in PRESETS:
            raise IVTInputError(f"unknown IVTConfig preset {name!r}; the presets are {', '.join(sorted(PRESETS))}")
        return cls(**(dict(PRESETS[name]) | overrides))

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (n_y, n_x): `(H - patch) // stride + 1` along each side, tokens flattened row-major."""
        height, width = self.image_size
        return (
            (height - self.patch_size) // self.patch_stride + 1,
            (width - self.patch_size) // self.patch_stride + 1,
        )

    @property
    def num_patches(self) -> int:
        grid_y, grid_x = self.grid_size
        return grid_y * grid_x

    def validate_ivt(self) -> None:
        """Raise a `ValueError` naming the field when a value cannot describe a working model."""
        positive_ints = (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
            "type_vocab_size",
            "patch_size",
            "patch_stride",
            "num_channels",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise IVTInputError(f"IVTConfig.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise IVTInputError(
                f"IVTConfig.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if (
            not isinstance(self.image_size, list)
            or len(self.image_size) != 2
            or not all(isinstance(side, int) and not isinstance(side, bool) for side in self.image_size)
        ):
            raise IVTInputError(f"IVTConfig.image_size must be (height, width) ints, got {self.image_size!r}")
        if min(self.image_size) < self.patch_size:
            raise IVTInputError(
                f"IVTConfig.image_size {tuple(self.image_size)} is smaller than patch_size {self.patch_size}"
            )
        for name in ("drop_path_rate", "text_embedding_dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise IVTInputError(f"IVTConfig.{name} must be in [0, 1), got {value!r}")
        if not 0.0 <= self.token_drop_ratio < 1.0:
            raise IVTInputError(f"IVTConfig.token_drop_ratio must be in [0, 1), got {self.token_drop_ratio!r}")
        if self.token_drop_mode not in TOKEN_DROP_MODES:
            raise IVTInputError(
                f"IVTConfig.token_drop_mode must be one of {TOKEN_DROP_MODES}, got {self.token_drop_mode!r}"
            )
        for name in ("layer_norm_eps", "text_layer_norm_eps", "initializer_range"):
            if getattr(self, name) <= 0:
                raise IVTInputError(f"IVTConfig.{name} must be > 0, got {getattr(self, name)!r}")
        fusion_layers = self.fusion_num_hidden_layers
        if isinstance(fusion_layers, bool) or not isinstance(fusion_layers, int) or fusion_layers < 0:
            raise IVTInputError(f"IVTConfig.fusion_num_hidden_layers must be an int >= 0, got {fusion_layers!r}")
        for name in ("fusion_hidden_dropout", "fusion_attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise IVTInputError(f"IVTConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.fusion_layer_norm_eps <= 0:
            raise IVTInputError(f"IVTConfig.fusion_layer_norm_eps must be > 0, got {self.fusion_layer_norm_eps!r}")
        if not self.itc_temperature > 0:
            raise IVTInputError(f"IVTConfig.itc_temperature must be > 0, got {self.itc_temperature!r}")
        temperature_range = self.itc_temperature_range
        if temperature_range is not None and (
            len(temperature_range) != 2 or not 0 < temperature_range[0] <= temperature_range[1]
        ):
            raise IVTInputError(
                f"IVTConfig.itc_temperature_range must be None or (low, high) with 0 < low <= high, got "
                f"{temperature_range!r}"
            )
        pad_token_id = self.pad_token_id
        if pad_token_id is not None and not 0 <= pad_token_id < self.vocab_size:
            raise IVTInputError(f"IVTConfig.pad_token_id {pad_token_id} is outside the vocabulary of {self.vocab_size}")


__all__ = ["PRESETS", "IVTConfig", "IVTInputError"]
