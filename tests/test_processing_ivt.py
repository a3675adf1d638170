"""IVTImageProcessor and IVTProcessor: every image kind, exact BERT uncased tokenisation, clear errors."""

from __future__ import annotations

import hashlib
import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ivt_hf import IVTConfig, IVTImageProcessor, IVTProcessor
from ivt_hf.model.processing_ivt import PACKAGED_VOCAB


def test_packaged_vocab_is_the_reference_vocab():
    data = PACKAGED_VOCAB.read_bytes()
    assert hashlib.md5(data).hexdigest() == "64800d5d8528ce344256daf115d4965e"
    assert len(data.decode().splitlines()) == 30522


def test_tokenisation_matches_bert_base_uncased():
    processor = IVTProcessor()
    encoded = processor(text=["A Woman in a RED coat.", "hi"])
    # bert-base-uncased ids: [CLS] a woman in a red coat . [SEP]
    assert encoded["input_ids"][0].tolist() == [101, 1037, 2450, 1999, 1037, 2417, 5435, 1012, 102]
    assert encoded["input_ids"][1].tolist() == [101, 7632, 102, 0, 0, 0, 0, 0, 0]
    assert encoded["attention_mask"][1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert "token_type_ids" not in encoded


def test_tokenize_pads_like_the_tokenizer_in_every_mode():
    """`tokenize` tokenises once and pads itself in the common case; it must equal the tokenizer's own padding."""
    processor = IVTProcessor()
    texts = ["a man in a red coat", "hi", "The woman, wearing a black-and-white striped shirt, carries a bag.", "x y"]
    expected = processor.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    got = processor.tokenize(texts, max_length=64)
    assert set(got) == {"input_ids", "attention_mask"}
    for key in got:
        assert torch.equal(got[key], expected[key]) and got[key].dtype == expected[key].dtype
    fixed = processor.tokenize(texts, max_length=32, padding="max_length")
    assert fixed["input_ids"].shape == (4, 32)
    assert torch.equal(fixed["input_ids"][:, : got["input_ids"].shape[1]], got["input_ids"])
    as_lists = processor.tokenize(texts, max_length=64, return_tensors=None)["input_ids"]
    assert as_lists[1] == [101, 7632, 102] + [0] * (got["input_ids"].shape[1] - 3)


def test_long_text_is_truncated_with_a_warning():
    processor = IVTProcessor()
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than 512 tokens were truncated \(indices \[1\]"):
        encoded = processor(text=["short", "word " * 600])
    assert encoded["input_ids"].shape == (2, 512) and encoded["input_ids"][1, -1] == 102
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        processor(text=["word " * 100])


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("", ValueError, r"text\[0\] is empty"),
        (["fine", "   "], ValueError, r"text\[1\] is empty"),
        (["fine", 3], TypeError, r"text\[1\] must be a string"),
        ([], ValueError, "non-empty"),
        (None, ValueError, "needs images, text, or both"),
    ],
)
def test_bad_text_is_a_clear_error(text, error, message):
    with pytest.raises(error, match=message):
        IVTProcessor()(text=text)


def _rgb_reference():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(200, 80, 3), dtype=np.uint8)


def test_image_processor_matches_manual_pipeline():
    array = _rgb_reference()
    pixel_values = IVTImageProcessor()(Image.fromarray(array))["pixel_values"]
    expected = np.asarray(Image.fromarray(array).resize((128, 384), Image.BILINEAR), dtype=np.float32)
    expected = (expected / 255.0 - 0.5) / 0.5
    assert pixel_values.shape == (1, 3, 384, 128) and pixel_values.dtype == torch.float32
    torch.testing.assert_close(pixel_values[0], torch.from_numpy(expected).permute(2, 0, 1), atol=1e-6, rtol=0)


def test_every_input_kind_gives_the_same_pixels(tmp_path):
    array = _rgb_reference()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    Image.fromarray(array).save(tmp_path / "person.png")
    processor = IVTImageProcessor()
    reference = processor(Image.fromarray(array))["pixel_values"]
    inputs = [
        array,  # HWC uint8
        np.moveaxis(array, -1, 0),  # CHW uint8
        torch.from_numpy(np.moveaxis(array, -1, 0).copy()),  # CHW tensor
        array.astype(np.float32) / 255.0,  # float in [0, 1]
        array.astype(np.uint16) * 257,  # 16-bit
        buffer.getvalue(),  # encoded bytes
        tmp_path / "person.png",  # path
    ]
    for index, image in enumerate(inputs):
        torch.testing.assert_close(processor(image)["pixel_values"], reference, atol=1e-6, rtol=0, msg=f"input {index}")


def test_grayscale_rgba_palette_and_16bit_modes():
    processor = IVTImageProcessor()
    gray = np.full((40, 20), 200, dtype=np.uint8)
    expected_gray = (200 / 255 - 0.5) / 0.5
    for image in (Image.fromarray(gray, "L"), Image.fromarray(gray.astype(np.uint16) * 257).convert("I;16")):
        values = processor(image)["pixel_values"]
        assert values.shape == (1, 3, 384, 128)
        torch.testing.assert_close(values, torch.full_like(values, expected_gray), atol=1e-6, rtol=0)
    # fully transparent RGBA is composited on white
    rgba = Image.new("RGBA", (20, 40), (255, 0, 0, 0))
    torch.testing.assert_close(processor(rgba)["pixel_values"], torch.ones(1, 3, 384, 128))
    opaque = Image.new("RGBA", (20, 40), (255, 0, 0, 255))
    values = processor(opaque)["pixel_values"][0]
    assert values[0].min() == 1.0 and values[1].max() == -1.0
    palette = Image.new("RGB", (20, 40), (0, 0, 255)).convert("P")
    values = processor(palette)["pixel_values"][0]
    assert values[2].min() == 1.0 and values[0].max() == -1.0


def test_processor_size_follows_config():
    processor = IVTProcessor.from_config(IVTConfig(image_size=(64, 32), max_position_embeddings=64))
    encoded = processor(images=[Image.new("RGB", (10, 30))] * 2, text="a man")
    assert encoded["pixel_values"].shape == (2, 3, 64, 32)
    with pytest.warns(UserWarning, match="longer than 64 tokens"):
        processor(text="word " * 70)


@pytest.mark.parametrize(
    "image, error, message",
    [
        (b"\x89PNG broken bytes", ValueError, r"images\[0\]: cannot decode image bytes"),
        (np.zeros((2, 10, 10, 3), dtype=np.uint8).reshape(2, 10, 30), ValueError, "expected an image of shape"),
        (np.zeros((10, 10, 2), dtype=np.uint8), ValueError, "expected an image of shape"),
        (np.full((10, 10, 3), 3.0, dtype=np.float32), ValueError, r"float images must hold values in \[0, 1\]"),
        (np.full((10, 10, 3), np.nan, dtype=np.float32), ValueError, "NaN"),
        ("does/not/exist.png", FileNotFoundError, "image file not found"),
        (object(), TypeError, "unsupported image type"),
    ],
)
def test_bad_images_are_clear_errors(image, error, message):
    with pytest.raises(error, match=message):
        IVTImageProcessor()(image)


def test_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ValueError, match=r"images\[1\]: cannot decode image file .*broken.jpg"):
        IVTImageProcessor()([Image.new("RGB", (8, 8)), path])
