"""Training and validation image transforms of the IVT recipe, in PIL + numpy + torch (torchvision does not load
beside the CPU torch wheel this project uses).

Training (`docs/design.md`, "Recipe"), per view: resize (bicubic) -> zero-pad 10 -> random crop back to (H, W) ->
horizontal flip (p 0.5) -> to tensor in [0, 1] -> normalise (mean 0.5, std 0.5) -> random erasing (p 0.5, area
0.02-1/3 of the image, log-uniform aspect 0.3-3.33, up to 10 attempts, per-pixel standard normal noise). The
semantics follow torchvision's `Resize`, `Pad`, `RandomCrop`, `RandomHorizontalFlip`, `ToTensor`, `Normalize` and
`RandomErasing(value="random")`; the code is written from those documented semantics, not copied.

Randomness comes from a `torch.Generator` (or an int seed) passed per call, so a collator can make every view a
pure function of (seed, epoch, sample, view) and training can resume bit-exactly. Geometry runs on uint8 numpy
arrays; only the final (3, H, W) image becomes a float tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import IVTInputError

__all__ = ["EvalTransform", "TrainTransform", "reference_padding", "resize_image", "to_normalized_tensor"]

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    if len(image_size) != 2 or any(int(side) != side or side < 1 for side in image_size):
        raise IVTInputError(f"image_size must be (height, width) with positive ints, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in _RESAMPLING:
        raise IVTInputError(f"interpolation must be one of {sorted(_RESAMPLING)}, got {interpolation!r}")
    return interpolation


def _per_channel(value: float | Sequence[float], name: str) -> torch.Tensor:
    """A mean or std as a (3, 1, 1) float32 tensor, from one number or three."""
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(item) for item in value]
    if len(values) != 3:
        raise IVTInputError(f"{name} must be a number or 3 numbers (RGB), got {value!r}")
    if name == "std" and min(values) <= 0:
        raise IVTInputError(f"std must be positive, got {value!r}")
    return torch.tensor(values, dtype=torch.float32).view(3, 1, 1)


def reference_padding(image_size: Sequence[int]) -> int:
    """The reference's zero padding before the random crop, 10 px at 384 high, scaled to the image height (>= 1)."""
    return max(1, round(10 * image_size[0] / 384))


def resize_image(image: Image.Image, image_size: tuple[int, int], interpolation: str) -> Image.Image:
    """Convert any PIL mode to RGB and resize to (height, width) with the named PIL filter.

    Modes with more than 8 bits (I, I;16, F) are clipped to 0..255 by PIL's own conversion, as in the reference,
    which also calls `convert("RGB")`.
    """
    height, width = image_size
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (width, height):  # PIL sizes are (width, height)
        image = image.resize((width, height), resample=_RESAMPLING[interpolation])
    return image


def to_normalized_tensor(pixels: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (H, W, 3) pixels -> float32 (3, H, W) as ``(pixels / 255 - mean) / std`` (ToTensor then Normalize).

    The operation order matches the model fixtures' ``(u8 / 255 - 0.5) / 0.5`` bit for bit.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise IVTInputError(f"expected uint8 (H, W, 3) pixels, got {pixels.dtype} {pixels.shape}")
    # One copy into channels-first contiguous uint8 memory (arrays from PIL are read-only, crops and flips are views),
    # then the float maths in place: much faster than arithmetic on a permuted (strided) view.
    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # (3, H, W) uint8
    return tensor.to(torch.float32).div_(255.0).sub_(mean).div_(std)


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if isinstance(generator, bool) or not isinstance(generator, (int, torch.Generator, type(None))):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(high_inclusive: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(0, high_inclusive + 1, (), generator=generator).item())


class _ResizeAndNormalise:
    """What both transforms share: the output size, the resize filter and the normalisation, each checked here."""

    def __init__(
        self, image_size: Sequence[int], interpolation: str, mean: float | Sequence[float], std: float | Sequence[float]
    ):
        self.image_size = _check_image_size(image_size)
        self.interpolation = _check_interpolation(interpolation)
        self.mean = _per_channel(mean, "mean")
        self.std = _per_channel(std, "std")


class EvalTransform(_ResizeAndNormalise):
    """Validation-time preprocessing: resize (bilinear by default) -> tensor -> normalise.

    The model's image processor is the public preprocessing path; this class exists so that training-time
    validation does not need it, and it shares `resize_image` / `to_normalized_tensor` with `TrainTransform`.
    The reference trains with bicubic and tests with bilinear; both are visible arguments.
    """

    def __init__(
        self,
        image_size: Sequence[int] = (384, 128),
        interpolation: str = "bilinear",
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ):
        super().__init__(image_size, interpolation, mean, std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """PIL image of any mode -> float32 (3, H, W)."""
        resized = resize_image(image, self.image_size, self.interpolation)
        return to_normalized_tensor(np.asarray(resized), self.mean, self.std)


class TrainTransform(_ResizeAndNormalise):
    """One augmented training view (`docs/design.md`, "Recipe"); call it three times per image for the three MLA views.

    Args:
        image_size: (height, width) of the output.
        padding: zeros added on every side before the random crop back to `image_size` (0 disables pad and crop).
        flip_p: probability of a horizontal flip.
        erase_p: probability of random erasing.
        erase_area: range of the erased area as a fraction of the image.
        erase_aspect: range of the erased rectangle's height / width, sampled log-uniformly.
        mean, std: normalisation, one number or one per RGB channel.
        interpolation: PIL filter name for the resize ("bicubic" in the reference's training).
        erase_attempts: rectangle draws before erasing gives up (torchvision uses 10).
    """

    def __init__(
        self,
        image_size: Sequence[int] = (384, 128),
        padding: int = 10,
        flip_p: float = 0.5,
        erase_p: float = 0.5,
        erase_area: tuple[float, float] = (0.02, 1 / 3),
        erase_aspect: tuple[float, float] = (0.3, 3.33),
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
        interpolation: str = "bicubic",
        erase_attempts: int = 10,
    ):
        super().__init__(image_size, interpolation, mean, std)
        if padding < 0:
            raise IVTInputError(f"padding must be >= 0, got {padding}")
        for name, probability in (("flip_p", flip_p), ("erase_p", erase_p)):
            if not 0.0 <= probability <= 1.0:
                raise IVTInputError(f"{name} must be in [0, 1], got {probability}")
        if not 0.0 < erase_area[0] <= erase_area[1] <= 1.0:
            raise IVTInputError(f"erase_area must satisfy 0 < low <= high <= 1, got {erase_area}")
        if not 0.0 < erase_aspect[0] <= erase_aspect[1]:
            raise IVTInputError(f"erase_aspect must satisfy 0 < low <= high, got {erase_aspect}")
        if erase_attempts < 1:
            raise IVTInputError(f"erase_attempts must be >= 1, got {erase_attempts}")
        self.padding = padding
        self.flip_p = flip_p
        self.erase_p = erase_p
        self.erase_area = (float(erase_area[0]), float(erase_area[1]))
        self.erase_aspect = (float(erase_aspect[0]), float(erase_aspect[1]))
        self.erase_attempts = erase_attempts

    def __call__(self, image: Image.Image | np.ndarray, generator: torch.Generator | int | None = None) -> torch.Tensor:
        """PIL image of any mode, or uint8 (H, W, 3) RGB pixels -> float32 (3, H, W).

        `generator`: a `torch.Generator` (advanced by the call), an int seed, or None for torch's global RNG.
        Draw order (fixed): crop offsets, flip, erase decision, erase rectangle(s) and noise. Pixels already at
        `image_size` skip the resize (PIL would return them unchanged), which makes cached training images cheap.
        """
        generator = _as_generator(generator)
        pixels = self._pixels(image)  # (H, W, 3) uint8 at image_size
        pixels = self._pad_and_crop(pixels, generator)
        if torch.rand((), generator=generator).item() < self.flip_p:
            pixels = pixels[:, ::-1]
        tensor = to_normalized_tensor(pixels, self.mean, self.std)  # (3, H, W)
        if torch.rand((), generator=generator).item() < self.erase_p:
            self._erase_in_place(tensor, generator)
        return tensor

    def _pixels(self, image: Image.Image | np.ndarray) -> np.ndarray:
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise IVTInputError(
                    f"expected a PIL image or uint8 (H, W, 3) RGB pixels, got {image.dtype} {image.shape}"
                )
            if tuple(image.shape[:2]) == tuple(self.image_size):
                return image
            image = Image.fromarray(image)
        return np.asarray(resize_image(image, self.image_size, self.interpolation))

    def _pad_and_crop(self, pixels: np.ndarray, generator: torch.Generator | None) -> np.ndarray:
        """Zero-pad every side, then crop a random (H, W) window: a shift of up to `padding` pixels.

        Computed as the shifted copy of the overlap, without building the padded array (same pixels).
        """
        if self.padding == 0:
            return pixels
        height, width = self.image_size
        pad = self.padding
        shift_y = _randint(2 * pad, generator) - pad  # output row i shows input row i + shift_y (zeros outside)
        shift_x = _randint(2 * pad, generator) - pad
        out = np.zeros_like(pixels)
        rows, cols = height - abs(shift_y), width - abs(shift_x)  # size of the overlap (none if the shift is larger)
        if rows > 0 and cols > 0:
            src_top, src_left = max(shift_y, 0), max(shift_x, 0)
            dst_top, dst_left = max(-shift_y, 0), max(-shift_x, 0)
            out[dst_top : dst_top + rows, dst_left : dst_left + cols] = pixels[
                src_top : src_top + rows, src_left : src_left + cols
            ]
        return out

    def _erase_in_place(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        """Replace a random rectangle with standard normal noise; no-op if no draw fits (torchvision semantics)."""
        channels, height, width = tensor.shape
        log_aspect_low, log_aspect_high = math.log(self.erase_aspect[0]), math.log(self.erase_aspect[1])
        for _ in range(self.erase_attempts):
            area = height * width * _uniform(*self.erase_area, generator)
            aspect = math.exp(_uniform(log_aspect_low, log_aspect_high, generator))
            erase_height = int(round(math.sqrt(area * aspect)))
            erase_width = int(round(math.sqrt(area / aspect)))
            if not (erase_height < height and erase_width < width):
                continue
            noise = torch.randn((channels, erase_height, erase_width), generator=generator)
            top = _randint(height - erase_height, generator)
            left = _randint(width - erase_width, generator)
            tensor[:, top : top + erase_height, left : left + erase_width] = noise
            return
