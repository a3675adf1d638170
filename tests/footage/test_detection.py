"""Person detectors behind one interface: a transformers object-detection checkpoint by folder or by Hub id (a tiny
random RT-DETR, served by the local Hub test server), its boxes in the frame's pixels and only its person class; a
checkpoint without one refused; OpenCV's HOG; and the fallback to HOG, with a notice, when the default checkpoint
cannot be had offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.footage import save_tiny_detector

pytest.importorskip("cv2")

from ivt_hf.errors import InputNotFoundError  # noqa: E402
from ivt_hf.footage.detection import (  # noqa: E402
    DEFAULT_DETECTOR,
    DetectorError,
    HogPersonDetector,
    TransformersPersonDetector,
    load_person_detector,
)

TOKEN = "hf_footage_test_token"


def _frame(height: int = 120, width: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def _expected_people(folder: Path, frame: np.ndarray, person_id: int, min_score: float) -> list[tuple]:
    """The RT-DETR head read by hand: a sigmoid score per query and class, the 10 best (query, class) pairs, each
    query's (cx, cy, w, h) box in fractions scaled by the frame's width and height, clipped; persons only."""
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    model = AutoModelForObjectDetection.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
    with torch.no_grad():
        outputs = model(**processor(images=[frame], return_tensors="pt"))
    classes = outputs.logits.shape[-1]
    scores, picked = outputs.logits[0].sigmoid().flatten().topk(outputs.logits.shape[1])
    height, width = frame.shape[:2]
    people = []
    for score, index in zip(scores.tolist(), picked.tolist()):
        query, label = divmod(index, classes)
        if label != person_id or score < min_score:
            continue
        cx, cy, w, h = outputs.pred_boxes[0, query].tolist()
        x0, x1 = (cx - w / 2) * width, (cx + w / 2) * width
        y0, y1 = (cy - h / 2) * height, (cy + h / 2) * height
        box = (min(max(x0, 0), width), min(max(y0, 0), height), min(max(x1, 0), width), min(max(y1, 0), height))
        people.append((box, score))
    return sorted(people, key=lambda person: -person[1])


def test_a_transformers_checkpoint_finds_its_person_class_in_frame_pixels(tmp_path):
    folder = save_tiny_detector(tmp_path / "rtdetr")
    detector = TransformersPersonDetector(str(folder), min_score=0.0, batch_size=2)
    assert detector.person_ids == [0] and detector.name == str(folder)
    frames = [_frame(120, 200, seed) for seed in range(3)]  # wider than tall: width and height must not swap
    found = detector.detect(frames)
    assert len(found) == 3
    for frame, people in zip(frames, found):
        expected = _expected_people(folder, frame, person_id=0, min_score=0.0)
        assert len(people) == len(expected) > 0
        for person, (box, score) in zip(people, expected):
            assert person.box == pytest.approx(box, abs=1e-3) and person.score == pytest.approx(score, abs=1e-5)
        # queries of the other classes were there, and were left out
        assert len(expected) < 10
    strict = TransformersPersonDetector(str(folder), min_score=0.99).detect(frames[:1])
    assert strict == [[]]


def test_a_checkpoint_without_a_person_class_is_refused_naming_it(tmp_path):
    folder = save_tiny_detector(tmp_path / "cars", labels={0: "car", 1: "truck"})
    with pytest.raises(DetectorError, match=r"cars has no person class in config.id2label \(car, truck"):
        TransformersPersonDetector(str(folder))
    with pytest.raises(DetectorError, match="cannot load the detector"):
        TransformersPersonDetector(str(tmp_path))  # a folder without a checkpoint


def test_names_that_are_neither_folder_nor_hub_id_are_refused(tmp_path):
    for name in ("no_such_folder", str(tmp_path / "missing"), "a/b/c"):
        with pytest.raises(InputNotFoundError, match="detector not found"):
            load_person_detector(name)


def test_hog_needs_no_weights_and_finds_nobody_in_an_empty_street():
    detector, notice = load_person_detector("hog")
    assert isinstance(detector, HogPersonDetector) and notice is None and detector.name == "hog"
    assert detector.detect([np.full((300, 200, 3), 128, np.uint8)]) == [[]]


DETECT_BY_NAME = """
import json, sys
import numpy as np
from ivt_hf.footage.detection import load_person_detector
detector, notice = load_person_detector(None if sys.argv[1] == "-" else sys.argv[1], min_score=0.0)
frame = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
people = detector.detect([frame])[0]
print(json.dumps({"name": detector.name, "notice": notice, "people": [[*p.box, p.score] for p in people]}))
"""


def _detect_in_subprocess(name: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", DETECT_BY_NAME, name], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_hub_id_loads_through_the_hub_protocol_and_the_default_falls_back_to_hog_offline(tmp_path):
    from helpers.local_hub import LocalHub

    folder = save_tiny_detector(tmp_path / "rtdetr")
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    base = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with LocalHub(token=TOKEN) as hub:
        hub.seed_repo("people-org/tiny-detr", files)
        online = _detect_in_subprocess("people-org/tiny-detr", {**base, "HF_ENDPOINT": hub.url})
        assert hub.unhandled == []
    local = TransformersPersonDetector(str(folder), min_score=0.0).detect([_frame()])[0]
    assert online["name"] == "people-org/tiny-detr" and online["notice"] is None
    assert len(online["people"]) == len(local) > 0
    expected = [value for person in local for value in (*person.box, person.score)]
    assert [value for person in online["people"] for value in person] == pytest.approx(expected, abs=1e-4)

    offline = _detect_in_subprocess("-", {**base, "HF_HUB_OFFLINE": "1"})  # the default, neither cached nor reachable
    assert offline["name"] == "hog" and offline["people"] == []
    assert DEFAULT_DETECTOR in offline["notice"] and "HOG" in offline["notice"]
