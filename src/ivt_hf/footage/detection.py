"""Finding people in frames, behind one small interface: `detector.detect(frames)` gives, per RGB frame, the people
found as `Detection(box, score)` in that frame's pixels.

Two detectors:
- `TransformersPersonDetector`: any transformers object-detection checkpoint (DETR, RT-DETR, ...) by Hub id or
  folder (`AutoModelForObjectDetection` + `AutoImageProcessor`); the person class is found in `config.id2label`.
- `HogPersonDetector`: OpenCV's built-in HOG + linear SVM people detector (Dalal and Triggs), which needs no weights:
  the fallback when no checkpoint can be had offline. Its score is the SVM margin through a logistic, so 0.5 is
  OpenCV's own threshold; it finds people at least 128 pixels tall (its window).

`load_person_detector(name)` picks one: "hog", a folder, or a Hub id (`DEFAULT_DETECTOR` when none is named, and
then, if its weights cannot be had, HOG with a notice instead of an error: a named checkpoint that fails is an
error). Both need the `video` extra (OpenCV; transformers is always there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import InputNotFoundError, IVTInputError

DEFAULT_DETECTOR = "PekingU/rtdetr_r18vd_coco_o365"  # RT-DETR R18 (COCO + Objects365), Apache-2.0, 81 MB
HOG = "hog"
PERSON_LABELS = ("person", "pedestrian", "people", "human")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # ORG/NAME; a path that is no folder is not taken for one


class DetectorError(IVTInputError):
    """A detector that cannot be loaded or used (the message names it)."""


@dataclass(frozen=True)
class Detection:
    """A person in a frame: `box` (x0, y0, x1, y1) in the frame's pixels and the detector's confidence in [0, 1]."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class PersonDetector(Protocol):
    name: str  # what the index records as its detector

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]: ...


def require_opencv():
    """The `cv2` module, or one error saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise IVTInputError(
            "indexing footage needs OpenCV and PyAV: pip install 'ivt_hf[video]' (opencv-python-headless, av)"
        ) from None
    return cv2


class HogPersonDetector:
    """OpenCV's default HOG people detector; `min_score` in [0, 1] on the logistic of its SVM margin."""

    name = HOG

    def __init__(self, min_score: float = 0.5, win_stride: int = 8, scale: float = 1.05):
        cv2 = require_opencv()
        if not hasattr(cv2, "HOGDescriptor"):  # OpenCV 5 moved it out of the main modules
            raise DetectorError(f"OpenCV {cv2.__version__} has no HOGDescriptor: install opencv-python-headless<5")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_score, self.win_stride, self.scale = min_score, win_stride, scale

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        found = []
        for frame in frames:
            rects, weights = self.hog.detectMultiScale(
                np.ascontiguousarray(frame),
                winStride=(self.win_stride, self.win_stride),
                padding=(8, 8),
                scale=self.scale,
            )
            people = []
            for (x, y, width, height), weight in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel()):
                score = 1.0 / (1.0 + math.exp(-float(weight)))
                if score >= self.min_score:
                    people.append(Detection((float(x), float(y), float(x + width), float(y + height)), score))
            found.append(_clipped(people, frame))
        return found


class TransformersPersonDetector:
    """A transformers object-detection model; only the person class is kept, above `min_score`."""

    def __init__(self, name_or_path: str, min_score: float = 0.5, batch_size: int = 4, device: str | None = None):
        import torch
        from transformers import AutoImageProcessor, AutoModelForObjectDetection

        self.name = name_or_path
        try:
            self.model = AutoModelForObjectDetection.from_pretrained(name_or_path).eval()
            self.processor = AutoImageProcessor.from_pretrained(name_or_path, backend="pil")
        except (OSError, ValueError, KeyError) as error:  # missing files, a repo that is not there, another kind
            raise DetectorError(f"cannot load the detector {name_or_path}: {error}") from error
        labels = {int(key): str(value) for key, value in (self.model.config.id2label or {}).items()}
        self.person_ids = sorted(key for key, label in labels.items() if label.strip().lower() in PERSON_LABELS)
        if not self.person_ids:
            shown = ", ".join(sorted(set(labels.values()))[:8])
            raise DetectorError(f"the detector {name_or_path} has no person class in config.id2label ({shown}, ...)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.min_score, self.batch_size = min_score, batch_size

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        import torch

        found = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            inputs = self.processor(images=batch, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                outputs = self.model(**inputs)
            sizes = [frame.shape[:2] for frame in batch]
            results = self.processor.post_process_object_detection(
                outputs, threshold=self.min_score, target_sizes=sizes
            )
            for frame, result in zip(batch, results):
                people = [
                    Detection(tuple(float(v) for v in box.tolist()), float(score))
                    for box, score, label in zip(result["boxes"], result["scores"], result["labels"])
                    if int(label) in self.person_ids
                ]
                found.append(_clipped(people, frame))
        return found


def _clipped(people: list[Detection], frame: np.ndarray) -> list[Detection]:
    """Boxes clipped to the frame, empty ones dropped, best score first."""
    height, width = frame.shape[:2]
    kept = []
    for person in people:
        x0, y0, x1, y1 = person.box
        box = (min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        if box[2] > box[0] and box[3] > box[1]:
            kept.append(Detection(box, person.score))
    return sorted(kept, key=lambda person: -person.score)


def load_person_detector(name: str | None = None, *, min_score: float = 0.5) -> tuple[PersonDetector, str | None]:
    """`(detector, notice)`: "hog" is OpenCV's HOG; a folder or Hub id a transformers checkpoint (an error if it
    cannot be loaded); None the default checkpoint, or HOG with a notice (returned, for the caller to print) when its
    weights are neither cached nor downloadable (offline)."""
    if name == HOG:
        return HogPersonDetector(min_score=min_score), None
    if name is not None:
        if not Path(name).is_dir() and not HUB_ID.fullmatch(name):
            raise InputNotFoundError(f"detector not found: {name} (a folder, a Hub id ORG/NAME, or 'hog')")
        return TransformersPersonDetector(name, min_score=min_score), None
    try:
        return TransformersPersonDetector(DEFAULT_DETECTOR, min_score=min_score), None
    except DetectorError as error:
        notice = (
            f"the default detector {DEFAULT_DETECTOR} could not be loaded ({_first_line(error)}); using OpenCV's HOG "
            "people detector instead (name a checkpoint with --detector, or --detector hog to say so)"
        )
        return HogPersonDetector(min_score=min_score), notice


def _first_line(error: BaseException) -> str:
    text = str(error).split("cannot load the detector", 1)[-1]
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


__all__ = [
    "DEFAULT_DETECTOR",
    "Detection",
    "DetectorError",
    "HogPersonDetector",
    "PersonDetector",
    "TransformersPersonDetector",
    "load_person_detector",
]
