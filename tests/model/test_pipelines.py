"""transformers pipelines on a saved IVT folder: `zero-shot-image-classification` and `image-feature-extraction`,
each against the direct model calls, with ivt_hf imported (registered classes) and with `trust_remote_code=True`
where ivt_hf cannot be imported; a pre-training folder is refused by the zero-shot pipeline with a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.commands import save_tiny_model_folder
from helpers.remote_code import run_without_ivt_hf
from PIL import Image
from transformers import pipeline

from ivt_hf import IVTConfig, IVTForPreTraining, IVTForZeroShotImageClassification, IVTModel, IVTProcessor
from ivt_hf.hub import save_model_folder

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md

LABELS = ["a man", "a woman", "a man with a red backpack and black shoes"]
DEFAULT_TEMPLATE = "This is a photo of {}."  # the zero-shot pipeline's default hypothesis_template


def _crop() -> Image.Image:
    """A pedestrian-sized crop (40 x 90) out of a larger random scene, as a detector would hand it over."""
    scene = np.random.default_rng(7).integers(0, 256, (120, 80, 3), dtype=np.uint8)
    return Image.fromarray(scene).crop((20, 15, 60, 105))


def _direct_zero_shot(model: IVTModel, processor: IVTProcessor, texts: list[str]) -> torch.Tensor:
    """The scores from the model's own embeddings: softmax over the texts of CMPM's image-to-text projections
    `image_embeds . normalize(text_embeds)`, the distribution IVT's fine-tuning loss trains."""
    inputs = processor(images=_crop(), text=texts)
    with torch.no_grad():
        image_embeds = model.get_image_features(inputs["pixel_values"])
        text_embeds = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    return (image_embeds @ torch.nn.functional.normalize(text_embeds, dim=-1).t()).softmax(dim=-1)[0]


def _direct_image_embeds(model: IVTModel, processor: IVTProcessor) -> torch.Tensor:
    with torch.no_grad():
        return model.get_image_features(processor(images=_crop())["pixel_values"])


def _assert_ranked(result: list[dict], expected_scores: torch.Tensor) -> None:
    """The pipeline's labels, best first, with the expected scores."""
    order = expected_scores.argsort(descending=True).tolist()
    assert [entry["label"] for entry in result] == [LABELS[index] for index in order]
    scores = torch.tensor([entry["score"] for entry in result])
    torch.testing.assert_close(scores, expected_scores[order], rtol=0, atol=1e-6)


def _pretraining_folder(folder):
    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", num_hidden_layers=1, patch_stride=16, fusion_num_hidden_layers=1)
    model = IVTForPreTraining(config).eval()
    save_model_folder(model, IVTProcessor.from_config(config), folder)
    return model


def test_zero_shot_pipeline_scores_are_the_softmax_of_the_direct_embeddings(tmp_path):
    folder = save_tiny_model_folder(tmp_path / "model")
    model, processor = IVTModel.from_pretrained(folder).eval(), IVTProcessor.from_pretrained(folder)
    classifier = pipeline("zero-shot-image-classification", model=str(folder))
    assert type(classifier.model) is IVTForZeroShotImageClassification
    for template in (DEFAULT_TEMPLATE, "{}"):  # "{}": the descriptions as they are, as IVT was trained on them
        result = classifier(_crop(), candidate_labels=LABELS, hypothesis_template=template)
        _assert_ranked(result, _direct_zero_shot(model, processor, [template.format(label) for label in LABELS]))


def test_zero_shot_logits_are_cmpm_projections_not_cosines(tmp_path):
    folder = save_tiny_model_folder(tmp_path / "model")
    model = IVTModel.from_pretrained(folder).eval()
    zero_shot = IVTForZeroShotImageClassification.from_pretrained(folder).eval()
    images = [_crop(), _crop().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    inputs = IVTProcessor.from_pretrained(folder)(images=images, text=LABELS)
    with torch.no_grad():
        plain, scaled = model(**inputs), zero_shot(**inputs)
    assert torch.equal(scaled.image_embeds, plain.image_embeds) and torch.equal(scaled.text_embeds, plain.text_embeds)
    image_norms = plain.image_embeds.norm(dim=-1, keepdim=True)  # (2, 1): one scale per image row
    text_norms = plain.text_embeds.norm(dim=-1, keepdim=True)  # (3, 1)
    torch.testing.assert_close(scaled.logits_per_image, plain.logits_per_image * image_norms, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(scaled.logits_per_text, plain.logits_per_text * text_norms, rtol=1e-6, atol=1e-6)
    assert bool((image_norms > 2).all())  # so the scaled scores are far from softmax(cosines), nearly uniform


def test_image_feature_extraction_pipeline_returns_the_image_embedding(tmp_path):
    folder = save_tiny_model_folder(tmp_path / "model")
    model, processor = IVTModel.from_pretrained(folder).eval(), IVTProcessor.from_pretrained(folder)
    extractor = pipeline("image-feature-extraction", model=str(folder))
    expected = _direct_image_embeds(model, processor)  # (1, hidden): the final-LayerNorm CLS vector IVT ranks with
    assert torch.equal(extractor(_crop(), return_tensors=True), expected)
    assert extractor(_crop()) == expected.tolist()


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")
def test_pretraining_folder_is_refused_by_zero_shot_and_gives_its_encoder_embedding(tmp_path):
    model = _pretraining_folder(tmp_path / "pre")
    with pytest.raises(ValueError, match=r"pre\W+holds a pre-training model \(IVTForPreTraining\)"):
        pipeline("zero-shot-image-classification", model=str(tmp_path / "pre"))
    extractor = pipeline("image-feature-extraction", model=str(tmp_path / "pre"))
    assert type(extractor.model) is IVTModel
    expected = _direct_image_embeds(model.ivt, IVTProcessor.from_pretrained(tmp_path / "pre"))
    assert torch.equal(extractor(_crop(), return_tensors=True), expected)


@pytest.mark.filterwarnings("ignore:the tokenizer has 30522 tokens")
def test_pipelines_with_remote_code_without_ivt_hf(tmp_path):
    folder = save_tiny_model_folder(tmp_path / "model")
    _pretraining_folder(tmp_path / "pre")
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForZeroShotImageClassification"] == "modeling_ivt.IVTForZeroShotImageClassification"
    model, processor = IVTModel.from_pretrained(folder).eval(), IVTProcessor.from_pretrained(folder)
    expected_scores = _direct_zero_shot(model, processor, [DEFAULT_TEMPLATE.format(label) for label in LABELS])
    order = expected_scores.argsort(descending=True).tolist()
    expected = {
        "labels": [LABELS[index] for index in order],
        "scores": expected_scores[order],
        "image_embeds": _direct_image_embeds(model, processor),
    }
    torch.save({key: value for key, value in expected.items() if key != "labels"}, tmp_path / "expected.pt")
    script = f"""
        import numpy as np
        import torch
        from PIL import Image
        from transformers import pipeline

        scene = np.random.default_rng(7).integers(0, 256, (120, 80, 3), dtype=np.uint8)
        crop = Image.fromarray(scene).crop((20, 15, 60, 105))
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        classifier = pipeline("zero-shot-image-classification", model={str(folder)!r}, trust_remote_code=True)
        result = classifier(crop, candidate_labels={LABELS!r})
        assert [entry["label"] for entry in result] == {expected["labels"]!r}, result
        scores = torch.tensor([entry["score"] for entry in result])
        torch.testing.assert_close(scores, expected["scores"], rtol=0, atol=1e-6)
        extractor = pipeline("image-feature-extraction", model={str(folder)!r}, trust_remote_code=True)
        assert torch.equal(extractor(crop, return_tensors=True), expected["image_embeds"])
        for model in (classifier.model, extractor.model):
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        try:
            pipeline("zero-shot-image-classification", model={str(tmp_path / "pre")!r}, trust_remote_code=True)
        except ValueError as error:
            assert "holds a pre-training model (IVTForPreTraining)" in str(error), str(error)[-2000:]
        else:
            raise AssertionError("the pre-training folder was not refused")
        assert not any(name.startswith("ivt_hf") for name in sys.modules)
        print("remote-code pipelines OK", type(classifier.model).__name__, type(extractor.model).__name__)
        """
    result = run_without_ivt_hf(script, tmp_path / "hf")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "remote-code pipelines OK IVTForZeroShotImageClassification IVTModel" in result.stdout
