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

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md


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


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("return_tensors", ["pt", "np", None])
@pytest.mark.parametrize("padding", [True, "longest", "max_length"])
def test_tokenize_pads_like_the_tokenizer_in_every_mode(padding, return_tensors, side):
    """`tokenize` tokenises once and lets the tokenizer pad: the ids and masks equal, value and type, those of one
    `tokenizer(..., padding, truncation, max_length)` call, in every padding mode, tensor type and padding side,
    also for a batch with a text cut to `max_length` (then padded to it)."""
    processor = IVTProcessor()
    processor.tokenizer.padding_side = side
    texts = ["a man in a red coat", "hi", "The woman, wearing a black-and-white striped shirt, carries a bag.", "x y"]
    for batch, max_length in ((texts, 32), (texts + ["word " * 40], 24)):
        expected = processor.tokenizer(
            batch,
            padding=padding,
            truncation=True,
            max_length=max_length,
            return_token_type_ids=False,
            return_tensors=return_tensors,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the cut text's warning: test_long_text_is_truncated_with_a_warning
            got = processor.tokenize(batch, max_length=max_length, padding=padding, return_tensors=return_tensors)
        assert set(got) == {"input_ids", "attention_mask"}
        for key in got:
            assert type(got[key]) is type(expected[key])
            if return_tensors is None:
                assert got[key] == expected[key]
            else:
                assert got[key].dtype == expected[key].dtype and got[key].tolist() == expected[key].tolist()
    shortest = processor.tokenize(texts, max_length=32, padding=padding, return_tensors=None)["input_ids"][1]
    width = 32 if padding == "max_length" else 19  # the third text: [CLS] + 17 tokens + [SEP]
    assert shortest == (
        [101, 7632, 102] + [0] * (width - 3) if side == "right" else [0] * (width - 3) + [101, 7632, 102]
    )


def test_long_text_is_truncated_with_a_warning():
    processor = IVTProcessor()
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than 512 tokens were truncated \(indices \[1\]"):
        encoded = processor(text=["short", "word " * 600])
    assert encoded["input_ids"].shape == (2, 512) and encoded["input_ids"][1, -1] == 102
    caption = ("a woman in a red coat, carrying a black backpack. " * 200)[:10_000]  # 10,000 characters
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than 64 tokens were truncated \(indices \[0\]"):
        encoded = processor(text=[caption], max_length=64)
    assert encoded["input_ids"].shape == (1, 64) and encoded["input_ids"][0, -1] == 102
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


def _awkward_files(tmp_path) -> dict:
    """Image files of the kinds phones, scanners and datasets produce."""
    rng = np.random.default_rng(0)
    files = {}
    photo = Image.fromarray(rng.integers(0, 256, (60, 20, 3), dtype=np.uint8))  # 20 wide, 60 tall
    photo.save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    files["truncated JPEG"] = tmp_path / "truncated.jpg"
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg")
    files["CMYK JPEG"] = tmp_path / "cmyk.jpg"
    Image.fromarray((rng.integers(0, 65536, (60, 20))).astype(np.uint16)).save(tmp_path / "16bit.png")
    files["16-bit PNG"] = tmp_path / "16bit.png"
    palette = photo.convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    files["palette PNG with transparency"] = tmp_path / "palette.png"
    sideways = photo.transpose(Image.Transpose.ROTATE_90)  # stored 60 wide, 20 tall; EXIF says: turn it upright
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    sideways.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    files["EXIF-rotated JPEG"] = tmp_path / "exif.jpg"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tmp_path / "one.png")
    files["1x1 PNG"] = tmp_path / "one.png"
    Image.new("RGB", (200, 200)).save(tmp_path / "bomb.png")
    files["decompression bomb"] = tmp_path / "bomb.png"
    return files


def test_awkward_image_files(tmp_path, monkeypatch):
    """What each awkward file gives, through `to_rgb_uint8` (the path the processor, `ivt index build` and
    `GalleryIndex` take) and through the processor."""
    from ivt_hf.model.image_processing_ivt import to_rgb_uint8

    files = _awkward_files(tmp_path)
    processor = IVTImageProcessor(size={"height": 64, "width": 32})
    readable = ("CMYK JPEG", "16-bit PNG", "palette PNG with transparency", "EXIF-rotated JPEG", "1x1 PNG")
    upright = {name: to_rgb_uint8(files[name]).shape for name in readable}
    assert upright == {**{name: (60, 20, 3) for name in readable[:4]}, "1x1 PNG": (1, 1, 3)}  # the EXIF one too
    assert to_rgb_uint8(files["1x1 PNG"])[0, 0].tolist() == [200, 10, 10]
    pixels = processor([str(path) for name, path in files.items() if name in upright], return_tensors="pt")
    assert pixels["pixel_values"].shape == (len(upright), 3, 64, 32)
    with pytest.raises(ValueError, match="truncated.jpg"):
        to_rgb_uint8(files["truncated JPEG"], name="crop 3")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 200 x 200 = 40,000 pixels: past twice the limit
    with pytest.raises(ValueError, match="bomb.png: .*decompression bomb"):
        to_rgb_uint8(files["decompression bomb"])
