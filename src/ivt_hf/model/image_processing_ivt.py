"""Evaluation-time image preprocessing of IVT: any image -> RGB -> resize to 384x128 (bilinear) -> normalise 0.5.

PIL backend only (no torchvision). Inputs may be PIL images of any mode (grayscale, RGBA, palette, 16-bit, float),
numpy arrays or torch tensors (HWC or CHW; uint8, uint16, or float in [0, 1]), file paths or encoded image bytes.
Every input is first brought to 8-bit RGB by `to_rgb_uint8`, so all of them take the same resize path as the
reference's PIL pipeline. Training augmentation lives in `ivt_hf.training.transforms`.

Decisions for awkward inputs: an EXIF orientation is applied (a phone photo stored sideways is a person standing
up); CMYK, 16-bit, float and palette images are converted without clipping, transparency on white; a 1x1 image is an
image (resized like any other); a truncated file, and a file past PIL's decompression-bomb limit, are errors that
name the file.

This file imports only transformers, numpy, PIL and torch, so it can be copied beside saved weights for
`trust_remote_code=True` loading.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling

from .configuration_ivt import IVTInputError

try:
    import torch
except ImportError:  # the ONNX runtime runs without torch (`ivt_hf.onnx.runtime`, a Space exported for it)
    torch = None

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, then convert any PIL mode to RGB without clipping 16-bit or float data (PIL's own
    convert clips them)."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            scale = 65535.0
        elif image.mode == "F":
            scale = 1.0 if array.size and array.max() <= 1.0 else 255.0
        else:  # 32-bit integer
            scale = 65535.0 if array.size and array.max() > 255 else 255.0
        gray = np.clip(np.rint(array / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # composite on white: transparent areas of a crop are background, and black would read as a dark garment
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray, name: str) -> Image.Image:
    """HWC or CHW array with 1, 3 or 4 channels (or HW) -> RGB PIL image."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise IVTInputError(
            f"{name}: expected an image of shape (H, W), (H, W, C) or (C, H, W) with C in (1, 3, 4), got "
            f"{tuple(array.shape)}"
        )
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = np.rint(array.astype(np.float64) / 65535.0 * 255.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise IVTInputError(f"{name}: the image contains NaN or infinite values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise IVTInputError(
                f"{name}: float images must hold values in [0, 1] (got [{array.min():.3g}, {array.max():.3g}]); pass "
                "uint8 for 0-255 data"
            )
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    else:
        raise IVTInputError(f"{name}: unsupported image dtype {array.dtype} (use uint8, uint16 or float in [0, 1])")
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[-1] == 3 else "RGBA")
    return _pil_to_rgb(Image.fromarray(np.ascontiguousarray(array), mode=mode))


def _decode(source, name: str, what: str) -> Image.Image:
    """The RGB image in a file or buffer, decoded whole now (not lazily, so a truncated file fails here); one error
    naming `what` when it is not a readable image."""
    try:
        with Image.open(source) as opened:
            opened.load()
            return _pil_to_rgb(opened)
    except _DECODE_ERRORS as error:
        raise IVTInputError(f"{name}: cannot decode {what}: {error}") from error


def to_rgb_uint8(image, name: str = "image") -> np.ndarray:
    """Decode / convert one image input to an `(H, W, 3)` uint8 array. `name` is used in error messages."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: image file not found: {path}")
        image = _decode(path, name, f"image file {path}")
    elif isinstance(image, (bytes, bytearray, memoryview)):
        image = _decode(io.BytesIO(bytes(image)), name, f"image bytes ({len(image)} bytes)")
    elif isinstance(image, Image.Image):
        image = _pil_to_rgb(image)
    elif torch is not None and isinstance(image, torch.Tensor):
        image = _array_to_rgb(image.detach().cpu().numpy(), name)
    elif isinstance(image, np.ndarray):
        image = _array_to_rgb(image, name)
    else:
        raise TypeError(
            f"{name}: unsupported image type {type(image).__name__} (PIL image, array, tensor, path or bytes)"
        )
    array = np.asarray(image)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise IVTInputError(f"{name}: empty image of size {array.shape[1]}x{array.shape[0]}")
    return array


class IVTImageProcessor(PilBackend):
    """Resize to (384, 128) with bilinear interpolation, rescale to [0, 1], normalise with mean = std = 0.5."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 384, "width": 128}
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = False  # done by `to_rgb_uint8`, which also handles 16-bit, float and alpha inputs

    def preprocess(self, images, *args, **kwargs):
        """Accepts one image or a list; each item may be PIL, numpy, torch, a path or encoded bytes."""
        if torch is not None and isinstance(images, torch.Tensor) and images.dim() == 4:
            images = list(images)
        elif isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        elif not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise IVTInputError("no images given")
        arrays = [to_rgb_uint8(image, name=f"images[{index}]") for index, image in enumerate(images)]
        kwargs["input_data_format"] = "channels_last"
        kwargs.setdefault("return_tensors", "pt")
        return super().preprocess(arrays, *args, **kwargs)


__all__ = ["IVTImageProcessor", "to_rgb_uint8"]
