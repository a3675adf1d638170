"""IVT's ONNX configurations for optimum's exporter: one `OnnxConfig` per encoder, the modules they export and the
dummy inputs they are traced with. `export.py` hands them to `optimum.exporters.onnx.main_export` as a custom model,
the way optimum documents it (`custom_onnx_configs` + `fn_get_submodels`).

Two graphs, because search encodes a gallery once and each query alone:
    image_encoder.onnx   pixel_values (batch, 3, H, W) float            -> image_embeds (batch, hidden)
    text_encoder.onnx    input_ids, attention_mask (batch, length) int64 -> text_embeds (batch, hidden)
The outputs are `get_image_features` / `get_text_features`: the final-LayerNorm CLS vectors, not normalised (the
runtime normalises, as the PyTorch encoding does). Batch and text length are dynamic; the text length is bounded by
the model's `max_position_embeddings`, which the runtime checks.

Why a plain `torch.onnx.export` of `get_image_features` seemed not to match PyTorch (platform notes, 2026-12-07):
the exported graph was right, the PyTorch side of the comparison was not. `torch.onnx.export` puts the module it is
given into eval mode for tracing and afterwards restores *that module's* mode recursively; a wrapper made for the
export is a fresh `nn.Module`, in training mode, so the export left the IVT model inside it in training mode, where
BMM drops a random share of the tokens. Every later PyTorch call was then a random token-dropped pass (max |diff| 2.75,
cosine 0.88-0.97, batch-dependent). Here each wrapper is put in eval mode before the export (optimum also does), so
the model comes back in eval mode; the parity tests compare against a model that was never near an export.

The one data-dependent branch of the traced code: `additive_padding_mask` returns no mask when every token of the
batch is real. A tracer freezes the branch it took, so dummy text inputs without padding would give a graph that
ignores `attention_mask`: the dummy batch here always has a padded last row (`IVTDummyTextGenerator`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from optimum.exporters.onnx import OnnxConfig
from optimum.utils import DummyInputGenerator, NormalizedConfig

IMAGE_ENCODER = "image_encoder"
TEXT_ENCODER = "text_encoder"
ONNX_OPSET = 17  # LayerNormalization is an ONNX op from 17 on; onnxruntime's quantiser and fusions all read it
PARITY_ATOL = 1e-4  # fp32 ONNX against PyTorch, on normalised embeddings


class IVTNormalizedConfig(NormalizedConfig):
    """What the dummy input generators read from `IVTConfig`."""

    VOCAB_SIZE = "vocab_size"
    MAX_TEXT_LENGTH = "max_position_embeddings"
    IMAGE_SIZE = "image_size"
    NUM_CHANNELS = "num_channels"


class IVTDummyImageGenerator(DummyInputGenerator):
    """`pixel_values` of the model's own input size (the patch grid and position embedding are fixed by it)."""

    SUPPORTED_INPUT_NAMES = ("pixel_values",)

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.batch_size = batch_size
        self.shape = [normalized_config.num_channels, *normalized_config.image_size]

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        return self.random_float_tensor(
            [self.batch_size, *self.shape], min_value=-1, max_value=1, framework=framework, dtype=float_dtype
        )


class IVTDummyTextGenerator(DummyInputGenerator):
    """`input_ids` and a right-padded `attention_mask` whose last row always ends in padding: the traced graph then
    always applies the mask (see the module docstring)."""

    SUPPORTED_INPUT_NAMES = ("input_ids", "attention_mask")

    def __init__(self, task: str, normalized_config: NormalizedConfig, batch_size: int = 2, **kwargs):
        self.batch_size = max(batch_size, 2)
        self.sequence_length = max(2, min(kwargs.get("sequence_length", 16), normalized_config.max_text_length))
        self.vocab_size = normalized_config.vocab_size

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        shape = [self.batch_size, self.sequence_length]
        if input_name == "input_ids":
            return self.random_int_tensor(shape, self.vocab_size, framework=framework, dtype=int_dtype)
        mask = torch.ones(shape, dtype=torch.int64)
        mask[-1, self.sequence_length // 2 :] = 0
        return mask if framework == "pt" else mask.numpy()


class _IVTOnnxConfig(OnnxConfig):
    NORMALIZED_CONFIG_CLASS = IVTNormalizedConfig
    DEFAULT_ONNX_OPSET = ONNX_OPSET
    ATOL_FOR_VALIDATION = PARITY_ATOL


class IVTImageOnnxConfig(_IVTOnnxConfig):
    """The image encoder: `pixel_values` -> `image_embeds`, batch dynamic."""

    DUMMY_INPUT_GENERATOR_CLASSES = (IVTDummyImageGenerator,)

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        return OrderedDict({"pixel_values": {0: "batch_size"}})

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return OrderedDict({"image_embeds": {0: "batch_size"}})


class IVTTextOnnxConfig(_IVTOnnxConfig):
    """The text encoder: `input_ids` + `attention_mask` -> `text_embeds`, batch and length dynamic."""

    DUMMY_INPUT_GENERATOR_CLASSES = (IVTDummyTextGenerator,)

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        axes = {0: "batch_size", 1: "sequence_length"}
        return OrderedDict({"input_ids": dict(axes), "attention_mask": dict(axes)})

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        return OrderedDict({"text_embeds": {0: "batch_size"}})


class _Encoder(torch.nn.Module):
    """One half of an `IVTModel` as a module of its own (optimum exports a module's `forward`), in eval mode from the
    start so that the export hands the model back in eval mode (module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.eval()

    @property
    def config(self):  # optimum sets `config.return_dict` and reads the config's name
        return self.model.config


class IVTImageEncoder(_Encoder):
    def forward(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_embeds": self.model.get_image_features(pixel_values)}


class IVTTextEncoder(_Encoder):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"text_embeds": self.model.get_text_features(input_ids, attention_mask)}


def onnx_configs(config, float_dtype: str = "fp32") -> dict[str, OnnxConfig]:
    """The custom ONNX configurations of an `IVTConfig`, by the name of the file each writes (without `.onnx`)."""
    return {
        IMAGE_ENCODER: IVTImageOnnxConfig(config, task="feature-extraction", float_dtype=float_dtype),
        TEXT_ENCODER: IVTTextOnnxConfig(config, task="feature-extraction", float_dtype=float_dtype),
    }


def submodels(model) -> dict[str, torch.nn.Module]:
    """optimum's `fn_get_submodels`: the modules to export, by the same names as `onnx_configs`."""
    model.eval()
    return {IMAGE_ENCODER: IVTImageEncoder(model), TEXT_ENCODER: IVTTextEncoder(model)}


__all__ = [
    "IMAGE_ENCODER",
    "IVTImageEncoder",
    "IVTImageOnnxConfig",
    "IVTTextEncoder",
    "IVTTextOnnxConfig",
    "ONNX_OPSET",
    "PARITY_ATOL",
    "TEXT_ENCODER",
    "onnx_configs",
    "submodels",
]
