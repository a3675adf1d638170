"""Footage in: people found in videos and still frames, linked over frames and cropped, for the gallery index.

decoding.py    frames and their times from a video (PyAV, FFmpeg bundled) or a folder of stills; a copy of a video
               that browsers play
detection.py   `PersonDetector`: a transformers object-detection checkpoint, or OpenCV's HOG people detector
tracking.py    IoU tracking over sampled frames and the choice of a few crops per track (pure functions)
extraction.py  `extract_people`: sample, detect, track, crop; a `FootageEntry` per crop (source, frame, time, box,
               track)
drawing.py     a frame with its box drawn, for the search page

Needs the `video` extra (`pip install 'ivt_hf[video]'`: av, opencv-python-headless).
"""

from .decoding import FootageReadError
from .detection import DEFAULT_DETECTOR, Detection, DetectorError, PersonDetector, load_person_detector
from .extraction import FootageEntry, FootageSettings, FootageSource, SourceReport, extract_people, footage_sources

__all__ = [
    "DEFAULT_DETECTOR",
    "Detection",
    "DetectorError",
    "FootageEntry",
    "FootageReadError",
    "FootageSettings",
    "FootageSource",
    "PersonDetector",
    "SourceReport",
    "extract_people",
    "footage_sources",
    "load_person_detector",
]
