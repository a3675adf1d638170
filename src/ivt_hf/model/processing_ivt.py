"""IVTProcessor: the image processor plus the BERT uncased WordPiece tokenizer, as the reference tokenises.

`IVTProcessor()` works offline: the bert-base-uncased vocabulary (Apache-2.0, Google) ships inside the package. Text
is checked (non-empty strings only) and text longer than `max_length` (512 tokens, the model's text positions) is
truncated with a warning, never silently.

This file imports only transformers and its sibling image processor, so it can be copied beside saved weights for
`trust_remote_code=True` loading (a copied processor loads its vocabulary from the saved folder).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from transformers import BertTokenizer, ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from .configuration_ivt import IVTInputError
from .image_processing_ivt import IVTImageProcessor

DEFAULT_MAX_LENGTH = 512
PACKAGED_VOCAB = Path(__file__).resolve().parents[1] / "resources" / "bert-base-uncased-vocab.txt"


def default_tokenizer(
    vocab_file: str | Path | None = None, model_max_length: int = DEFAULT_MAX_LENGTH
) -> BertTokenizer:
    """The bert-base-uncased tokenizer built from a local vocab file (the packaged one by default), no download."""
    vocab_file = Path(vocab_file) if vocab_file is not None else PACKAGED_VOCAB
    if not vocab_file.is_file():
        raise FileNotFoundError(
            f"WordPiece vocabulary not found at {vocab_file}; pass vocab_file or load the processor from a saved folder"
        )
    return BertTokenizer(vocab=str(vocab_file), do_lower_case=True, model_max_length=model_max_length)


def validate_texts(text) -> list[str]:
    """A string or a list of strings, none empty; raises naming the offending index."""
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, (list, tuple)) or len(texts) == 0:
        raise IVTInputError(
            f"text must be a non-empty string or a non-empty list of strings, got {type(text).__name__}"
        )
    for index, item in enumerate(texts):
        if not isinstance(item, str):
            raise TypeError(f"text[{index}] must be a string, got {type(item).__name__}")
        if not item.strip():
            raise IVTInputError(f"text[{index}] is empty or only whitespace")
    return list(texts)


class IVTProcessor(ProcessorMixin):
    """Wraps [`IVTImageProcessor`] and a BERT uncased tokenizer into one `__call__(images=..., text=...)`."""

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        image_processor = image_processor if image_processor is not None else IVTImageProcessor()
        tokenizer = tokenizer if tokenizer is not None else default_tokenizer()
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_config(cls, config, vocab_file: str | Path | None = None) -> IVTProcessor:
        """A processor whose image size matches `config.image_size` and whose text limit matches its positions."""
        height, width = config.image_size
        image_processor = IVTImageProcessor(size={"height": height, "width": width})
        tokenizer = default_tokenizer(vocab_file, model_max_length=config.max_position_embeddings)
        if len(tokenizer) != config.vocab_size:
            warnings.warn(
                f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}",
                stacklevel=2,
            )
        return cls(image_processor=image_processor, tokenizer=tokenizer)

    def tokenize(self, text, max_length: int | None = None, padding: bool | str = True, return_tensors="pt"):
        """Tokenise validated text, padded by the tokenizer; longer than `max_length` tokens is cut with a warning
        that names the texts.

        One tokenizer call does it when nothing is too long: lists first (a text too long would not fit a tensor
        padded to `max_length`), their lengths read from the attention mask, then the tokenizer's own conversion to
        tensors. A batch with a text too long is tokenised again with truncation, after the warning.
        """
        texts = validate_texts(text)
        max_length = max_length or min(self.tokenizer.model_max_length, DEFAULT_MAX_LENGTH)
        pad_to = max_length if padding == "max_length" else None  # else the tokenizer warns that it ignores it
        encoded = self.tokenizer(
            texts, padding=padding, max_length=pad_to, return_attention_mask=True, return_token_type_ids=False
        )
        lengths = [sum(row) for row in encoded["attention_mask"]]
        too_long = [index for index, length in enumerate(lengths) if length > max_length]
        if not too_long:
            return encoded.convert_to_tensors(return_tensors)
        warnings.warn(
            f"{len(too_long)} text(s) longer than {max_length} tokens were truncated (indices {too_long[:10]}, "
            f"longest {max(lengths)} tokens)",
            stacklevel=2,
        )
        return self.tokenizer(
            texts,
            padding=padding,
            truncation=True,
            max_length=max_length,
            return_token_type_ids=False,
            return_tensors=return_tensors,
        )

    def __call__(self, images=None, text=None, max_length: int | None = None, return_tensors="pt", **kwargs):
        """Returns a `BatchFeature` with `pixel_values` and/or `input_ids` + `attention_mask`."""
        if images is None and text is None:
            raise IVTInputError("IVTProcessor needs images, text, or both")
        data = {}
        if text is not None:
            data.update(self.tokenize(text, max_length=max_length, return_tensors=return_tensors))
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors))
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask"]


__all__ = ["IVTProcessor", "default_tokenizer", "validate_texts"]
