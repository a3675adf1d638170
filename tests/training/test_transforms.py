"""Training/validation image transforms: shapes, exact pixel semantics, determinism, flip, pad-crop, erasing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ivt_hf.training.transforms import EvalTransform, TrainTransform

SMALL = (48, 16)  # (H, W): keeps the per-call cost tiny


def _photo(height: int = 60, width: int = 25, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _clean(image: Image.Image, image_size=SMALL) -> torch.Tensor:
    """What the training transform gives with every random step switched off (bicubic resize + normalise)."""
    return EvalTransform(image_size, interpolation="bicubic")(image)


def test_default_output_shape_dtype_and_range():
    output = TrainTransform()(_photo(), generator=0)
    assert output.shape == (3, 384, 128) and output.dtype == torch.float32
    assert torch.isfinite(output).all()
    no_erasing = TrainTransform(erase_p=0.0)(_photo(), generator=0)
    assert no_erasing.min() >= -1.0 and no_erasing.max() <= 1.0


def test_eval_transform_is_resize_then_normalise_exactly():
    image = _photo()
    pixels = np.asarray(image.resize((128, 384), Image.Resampling.BILINEAR)).astype(np.float32)
    expected = torch.from_numpy((pixels / 255 - 0.5) / 0.5).permute(2, 0, 1)
    assert torch.equal(EvalTransform()(image), expected)
    assert not torch.equal(EvalTransform(interpolation="bicubic")(image), expected)


def test_per_channel_mean_and_std():
    image = Image.new("RGB", (16, 48), (255, 0, 51))
    output = EvalTransform(SMALL, mean=(0.5, 0.0, 0.1), std=(0.5, 1.0, 0.2))(image)
    torch.testing.assert_close(output[:, 0, 0], torch.tensor([1.0, 0.0, 0.5]))


def test_same_seed_same_view_and_generator_advances():
    transform = TrainTransform(SMALL)
    image = _photo()
    assert torch.equal(transform(image, generator=7), transform(image, generator=7))
    assert torch.equal(transform(image, generator=torch.Generator().manual_seed(7)), transform(image, generator=7))
    generator = torch.Generator().manual_seed(7)
    first, second = transform(image, generator=generator), transform(image, generator=generator)
    assert not torch.equal(first, second)
    assert len({transform(image, generator=seed).sum().item() for seed in range(10)}) == 10


def test_global_rng_is_used_without_generator():
    transform = TrainTransform(SMALL)
    torch.manual_seed(3)
    first = transform(_photo())
    torch.manual_seed(3)
    assert torch.equal(first, transform(_photo()))


def test_flip_really_flips():
    image = _photo()
    clean = _clean(image)
    always = TrainTransform(SMALL, padding=0, flip_p=1.0, erase_p=0.0)
    never = TrainTransform(SMALL, padding=0, flip_p=0.0, erase_p=0.0)
    assert torch.equal(always(image, generator=0), clean.flip(-1))
    assert torch.equal(never(image, generator=0), clean)
    halves = [torch.equal(TrainTransform(SMALL, padding=0, erase_p=0.0)(image, generator=s), clean) for s in range(40)]
    assert 8 < sum(halves) < 32  # flip_p = 0.5


def test_pad_and_crop_is_a_shift_of_at_most_padding_with_zero_fill():
    image = _photo()
    clean = _clean(image)
    transform = TrainTransform(SMALL, padding=10, flip_p=0.0, erase_p=0.0)
    shifts = set()
    for seed in range(15):
        output = transform(image, generator=seed)
        matches = []
        for dy in range(-10, 11):
            for dx in range(-10, 11):
                # zero padding is black, i.e. -1 after normalisation
                shifted = torch.full_like(clean, -1.0)
                height, width = clean.shape[1:]
                shifted[:, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = clean[
                    :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
                ]
                if torch.equal(shifted, output):
                    matches.append((dy, dx))
        assert len(matches) == 1, f"seed {seed}: {matches}"
        shifts.add(matches[0])
    assert len(shifts) > 5


def _erased_box(output: torch.Tensor, clean: torch.Tensor) -> tuple[int, int, int, int] | None:
    changed = (output != clean).any(dim=0)
    if not changed.any():
        return None
    rows, cols = torch.nonzero(changed, as_tuple=True)
    top, bottom, left, right = rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()
    assert changed[top : bottom + 1, left : right + 1].all(), "erased region must be one full rectangle"
    assert changed.sum().item() == (bottom - top + 1) * (right - left + 1)
    return top, left, bottom - top + 1, right - left + 1


def test_random_erasing_area_aspect_and_noise():
    image_size = (96, 64)
    image = _photo()
    clean = _clean(image, image_size)
    transform = TrainTransform(image_size, padding=0, flip_p=0.0, erase_p=1.0)
    erased_values = []
    boxes = 0
    for seed in range(60):
        output = transform(image, generator=seed)
        box = _erased_box(output, clean)
        if box is None:  # all 10 attempts may miss (a rectangle wider than the image); must be rare
            continue
        boxes += 1
        top, left, height, width = box
        area = height * width / (image_size[0] * image_size[1])
        # rounding of h and w to integers widens the bounds slightly
        assert 0.02 * 0.8 <= area <= (1 / 3) * 1.2, (seed, box)
        assert 0.3 * 0.7 <= height / width <= 3.33 / 0.7, (seed, box)
        erased_values.append(output[:, top : top + height, left : left + width].flatten())
    assert boxes >= 50
    noise = torch.cat(erased_values)
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1.0) < 0.05  # per-pixel N(0, 1)


def test_erasing_probability():
    image = _photo()
    clean = _clean(image)
    never = TrainTransform(SMALL, padding=0, flip_p=0.0, erase_p=0.0)
    assert all(torch.equal(never(image, generator=seed), clean) for seed in range(20))
    sometimes = TrainTransform(SMALL, padding=0, flip_p=0.0, erase_p=0.5)
    erased = sum(not torch.equal(sometimes(image, generator=seed), clean) for seed in range(60))
    assert 15 < erased < 45


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr", "I", "I;16", "F"])
def test_any_pil_mode(mode):
    image = _photo().convert(mode) if mode not in ("I;16", "F") else Image.new(mode, (25, 60))
    for output in (TrainTransform(SMALL)(image, generator=1), EvalTransform(SMALL)(image)):
        assert output.shape == (3, *SMALL) and output.dtype == torch.float32
        assert torch.isfinite(output).all()


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        TrainTransform(interpolation="cubic")
    with pytest.raises(ValueError):
        TrainTransform(flip_p=1.5)
    with pytest.raises(ValueError):
        TrainTransform(erase_area=(0.5, 0.1))
    with pytest.raises(ValueError):
        EvalTransform(image_size=(384,))
    with pytest.raises(ValueError):
        EvalTransform(std=0.0)
    with pytest.raises(TypeError):
        TrainTransform(SMALL)(_photo(), generator=1.5)


def _reference_pad_crop(pixels: np.ndarray, pad: int, top: int, left: int) -> np.ndarray:
    """The spec's pad-then-crop, written out with np.pad: zeros on every side, then the (H, W) window at (top, left)."""
    padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)))
    return padded[top : top + pixels.shape[0], left : left + pixels.shape[1]]


@pytest.mark.parametrize("pad", [1, 3, 10, 30])  # 30 > both sides: some windows hold no pixel at all
def test_pad_and_crop_equals_padding_then_cropping(pad):
    pixels = np.random.default_rng(pad).integers(1, 256, (*SMALL, 3), dtype=np.uint8)
    transform = TrainTransform(SMALL, padding=pad)
    for seed in range(60):
        generator = torch.Generator().manual_seed(seed)
        top, left = (int(torch.randint(0, 2 * pad + 1, (), generator=generator)) for _ in range(2))
        out = transform._pad_and_crop(pixels, torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(out, _reference_pad_crop(pixels, pad, top, left))


def test_uint8_array_input_gives_the_pil_result():
    """Cached training images arrive as arrays: at the output size they skip the resize, else they are resized."""
    at_size = _photo(*SMALL)
    transform = TrainTransform(SMALL)
    for seed in range(20):
        assert torch.equal(transform(np.asarray(at_size), generator=seed), transform(at_size, generator=seed))
    other = _photo(60, 25)
    assert torch.equal(transform(np.asarray(other), generator=3), transform(other, generator=3))
    for bad in (np.zeros((*SMALL, 3), dtype=np.float32), np.zeros(SMALL, dtype=np.uint8)):
        with pytest.raises(ValueError, match=r"PIL image or uint8 \(H, W, 3\) RGB pixels"):
            transform(bad, generator=0)
