"""CMPM loss: the reference's numbers, a brute-force oracle, an analytic value and the loss's asymmetries."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ivt_hf.training.finetuning.losses import cmpm_loss, cmpm_loss_global, cmpm_loss_terms, gather_embeddings_and_labels

FIXTURE = Path(__file__).parents[1] / "fixtures" / "cmpm_reference.safetensors"


def _oracle_cmpm(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, epsilon: float = 1e-8) -> float:
    """The CMPM definition written with Python loops and floats, independent of the vectorised implementation."""
    image_rows, text_rows, ids = image.tolist(), text.tolist(), labels.tolist()
    pairs = len(ids)

    def unit(vector):
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector]

    def direction(projecting, target):
        targets = [unit(row) for row in target]
        total = 0.0
        for i in range(pairs):
            logits = [sum(a * b for a, b in zip(projecting[i], targets[j])) for j in range(pairs)]
            top = max(logits)
            log_normaliser = top + math.log(sum(math.exp(logit - top) for logit in logits))
            positives = sum(1 for j in range(pairs) if ids[j] == ids[i])
            for j in range(pairs):
                log_p = logits[j] - log_normaliser
                q = (1.0 if ids[j] == ids[i] else 0.0) / math.sqrt(positives)
                total += math.exp(log_p) * (log_p - math.log(q + epsilon))
        return total / pairs

    return direction(image_rows, text_rows) + direction(text_rows, image_rows)


def test_reproduces_reference_loss_and_gradients():
    reference = load_file(FIXTURE)
    image = reference["image_embeddings"].clone().requires_grad_(True)
    text = reference["text_embeddings"].clone().requires_grad_(True)
    loss = cmpm_loss(image, text, reference["labels"])
    loss.backward()
    assert loss.shape == ()
    torch.testing.assert_close(loss, reference["loss"].reshape(()), rtol=1e-5, atol=0)
    torch.testing.assert_close(image.grad, reference["grad_image"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(text.grad, reference["grad_text"], rtol=1e-5, atol=1e-7)


def test_matches_brute_force_oracle_with_unequal_group_sizes():
    generator = torch.Generator().manual_seed(3)
    image = torch.randn(7, 4, generator=generator, dtype=torch.float64) * 3
    text = torch.randn(7, 4, generator=generator, dtype=torch.float64) * 3
    labels = torch.tensor([5, 5, 5, 9, 9, 2, 11])  # groups of 3, 2, 1, 1: q differs per row
    assert cmpm_loss(image, text, labels).item() == pytest.approx(_oracle_cmpm(image, text, labels), rel=1e-12)


def test_analytic_value_for_two_orthogonal_pairs():
    # v_i = t_i = a * e_i, distinct ids: both directions see logits [a, 0] per row and q = identity, so per row
    # KL = p * log(p / (1 + eps)) + (1 - p) * log((1 - p) / eps) with p = sigmoid(a); both directions are equal.
    scale, epsilon = 3.0, 1e-8
    embeddings = scale * torch.eye(2, dtype=torch.float64)
    p = 1 / (1 + math.exp(-scale))
    per_row = p * math.log(p / (1 + epsilon)) + (1 - p) * math.log((1 - p) / epsilon)
    loss = cmpm_loss(embeddings, embeddings.clone(), torch.tensor([0, 1]), epsilon=epsilon)
    assert loss.item() == pytest.approx(2 * per_row, rel=1e-12)


def test_terms_sum_to_loss_and_are_nonnegative():
    reference = load_file(FIXTURE)
    arguments = (reference["image_embeddings"], reference["text_embeddings"], reference["labels"])
    terms = cmpm_loss_terms(*arguments)
    torch.testing.assert_close(terms.image_to_text + terms.text_to_image, cmpm_loss(*arguments))
    assert terms.image_to_text.item() > 0 and terms.text_to_image.item() > 0


def test_projecting_side_is_raw_and_target_side_is_normalised():
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    text = torch.randn(6, 8, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    base = cmpm_loss_terms(image, text, labels)
    scaled_text = cmpm_loss_terms(image, 5 * text, labels)
    # text is only the target of image->text: that term ignores its scale; text->image projects raw text.
    torch.testing.assert_close(scaled_text.image_to_text, base.image_to_text)
    assert abs(scaled_text.text_to_image.item() - base.text_to_image.item()) > 1e-3


def test_invariant_to_pair_order():
    reference = load_file(FIXTURE)
    permutation = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    image, text, labels = reference["image_embeddings"], reference["text_embeddings"], reference["labels"]
    torch.testing.assert_close(
        cmpm_loss(image[permutation], text[permutation], labels[permutation]), cmpm_loss(image, text, labels)
    )


def test_low_precision_and_autocast_compute_in_float32():
    reference = load_file(FIXTURE)
    image, text, labels = reference["image_embeddings"], reference["text_embeddings"], reference["labels"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = cmpm_loss(image, text, labels)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, cmpm_loss(image, text, labels))

    image_bf16 = image.to(torch.bfloat16).requires_grad_(True)
    loss = cmpm_loss(image_bf16, text.to(torch.bfloat16), labels)
    loss.backward()
    assert loss.dtype == torch.float32 and image_bf16.grad.dtype == torch.bfloat16


def test_global_form_without_process_group_is_the_plain_loss():
    reference = load_file(FIXTURE)
    arguments = (reference["image_embeddings"], reference["text_embeddings"], reference["labels"])
    assert torch.equal(cmpm_loss_global(*arguments), cmpm_loss(*arguments))
    gathered = gather_embeddings_and_labels(*arguments)
    for original, returned in zip(arguments, gathered):
        assert torch.equal(original, returned)


@pytest.mark.parametrize(
    ("image_shape", "text_shape", "labels_shape"),
    [((4, 8), (4, 7), (4,)), ((4, 8), (3, 8), (4,)), ((4, 8), (4, 8), (3,)), ((4,), (4,), (4,))],
)
def test_rejects_mismatched_shapes(image_shape, text_shape, labels_shape):
    with pytest.raises(ValueError):
        cmpm_loss(torch.zeros(image_shape), torch.zeros(text_shape), torch.zeros(labels_shape, dtype=torch.long))
