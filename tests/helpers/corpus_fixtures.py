"""Tiny copies of the published pre-training corpora (`ivt_hf.data.corpora`, docs/corpora.md), written by the tests in
each corpus's exact layout (file names, record shapes, image folders), with small JPEGs made here; and what reading each
must give: its pairs (key -> caption) and what its authors' caption cleaning counts.

Each builder returns the corpus folder; `EXPECTED[kind]` holds the pairs and the counts."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image


def jpeg_bytes(shade: int, size: tuple[int, int] = (16, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (37 * shade % 256, 80 + 11 * shade % 150, 60)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(shade))


def attributes(seed: int) -> list[int]:
    """A MALS label: 27 attribute values, -1 where unknown."""
    return [(seed + position) % 3 - 1 for position in range(27)]


def make_webperson(root: Path) -> Path:
    """`100w.json` (a list of one-key objects, captions carrying the literal "/n") beside `images/<relpath>`."""
    records = [
        {"0001/0001_c1_01.jpg": {"caption1": "A man in a red coat./n", "caption2": "He wears/n black shoes."}},
        {"0002/0002_c3_01.jpg": {"caption1": "/n", "caption2": "A woman in a green skirt."}},
        {"0003/0003_c2_07.jpg": {"caption1": "A child with a yellow cap.", "caption2": "The child holds a ball."}},
        {"0001/0001_c1_01.jpg": {"caption1": "The same image again.", "caption2": "Listed twice."}},
    ]
    for shade, relpath in enumerate(("0001/0001_c1_01.jpg", "0002/0002_c3_01.jpg", "0003/0003_c2_07.jpg")):
        write_jpeg(root / "images" / relpath, shade)
    (root / "100w.json").write_text(json.dumps(records), encoding="utf-8")
    return root


def make_luperson_mllm(root: Path) -> Path:
    """The four caption files of MLLM4Text-ReID (`{"<path>/<name>.jpg": caption}`) beside a flat `images/` folder
    of LUPerson images; template leftovers (`description]`, `<`) in three captions, one caption of an image the
    folder lacks."""
    files = {
        "Ts-qwen.json": {
            "LUPerson/part1/000001.jpg": "A man in a blue jacket and jeans.",
            "LUPerson/part1/000002.jpg": "A woman in a <ref> dress.",
            "LUPerson/part9/000009.jpg": "A person whose image is not in the folder.",
        },
        "Td-qwen.json": {
            "LUPerson/part1/000001.jpg": "Write the [person description] here.",
            "LUPerson/part1/000002.jpg": "A woman with long hair and a white dress.",
            "LUPerson/part1/000003.jpg": "An old man <img> with a cane.",
        },
        "Ts-shikra.json": {
            "LUPerson/part1/000001.jpg": "The man wears a blue jacket.",
            "LUPerson/part1/000002.jpg": "The woman wears a white dress.",
        },
        "Td-shikra.json": {
            "LUPerson/part1/000001.jpg": "He walks with his hands in his pockets.",
            "LUPerson/part1/000003.jpg": "An old man walking with a wooden cane.",
        },
    }
    for shade, name in enumerate(("000001.jpg", "000002.jpg", "000003.jpg")):
        write_jpeg(root / "images" / name, shade)
    for name, captions in files.items():
        (root / name).write_text(json.dumps(captions), encoding="utf-8")
    return root


def make_mals(root: Path) -> Path:
    """`gene_attrs/*.json` lists of `{"image": "gene_crop/...jpg", "caption", "image_id", "label"}` beside
    `gene_crop/`."""
    files = {
        "g_c_g_a_0_attrs.json": [
            ("gene_crop/c_g_a_0/000000.jpg", "a woman in a white top and black trousers"),
            ("gene_crop/c_g_a_0/000001.jpg", "  "),
        ],
        "g_i_g_a_0_attrs.json": [("gene_crop/i_g_a_0/000000.jpg", "a man with a grey backpack and blue shorts")],
    }
    shade = 0
    for name, rows in files.items():
        records = []
        for image, caption in rows:
            write_jpeg(root / image, shade)
            records.append({"image": image, "caption": caption, "image_id": shade + 1, "label": attributes(shade)})
            shade += 1
        (root / "gene_attrs").mkdir(parents=True, exist_ok=True)
        (root / "gene_attrs" / name).write_text(json.dumps(records), encoding="utf-8")
    return root


SYNTH_PEDES_RECORDS = [
    (1, "Part1/1/0.jpg", ["A man in a black coat.", "The man carries a red bag."]),
    (1, "Part1/1/1.jpg", ["A man with a red bag.", "He wears black boots.", "A man walking away."]),
    (2, "Part2/2/0.jpg", ["A girl in a pink dress.", " "]),
    (2, "Part2/2/1.jpg", ["A girl with pink shoes.", "She looks to the left."]),
]


def make_synth_pedes(root: Path, name: str = "synthpedes_dataset.json") -> Path:
    """`synthpedes_dataset.json` (or `synthpedes-dataset.json`): records `{"id", "file_path": "PartN/<id>/<n>.jpg",
    "attributes", "captions", "prompt_caption"}` beside `Part*/`."""
    records = []
    for shade, (person, path, captions) in enumerate(SYNTH_PEDES_RECORDS):
        write_jpeg(root / path, shade)
        records.append(
            {
                "id": person,
                "file_path": path,
                "attributes": {"gender": "male" if person == 1 else "female"},
                "captions": captions,
                "prompt_caption": f"a photo of person {person}",
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(records), encoding="utf-8")
    return root


MAKERS = {
    "webperson": make_webperson,
    "luperson_mllm": make_luperson_mllm,
    "mals": make_mals,
    "synth_pedes": make_synth_pedes,
}

# what each corpus reads to: its pairs (key -> caption), and the report's images, captions and cleaning counts
EXPECTED = {
    "webperson": {
        "pairs": {
            "images/0001/0001_c1_01.jpg#1": "A man in a red coat.",
            "images/0001/0001_c1_01.jpg#2": "He wears black shoes.",
            "images/0002/0002_c3_01.jpg#2": "A woman in a green skirt.",
            "images/0003/0003_c2_07.jpg#1": "A child with a yellow cap.",
            "images/0003/0003_c2_07.jpg#2": "The child holds a ball.",
        },
        "images": 3,
        "cleaning": {
            "'/n' stripped": 3,
            "empty caption dropped": 1,
            "repeated record of an image dropped": 1,
        },
    },
    "luperson_mllm": {
        "pairs": {
            "images/000001.jpg#1": "A man in a blue jacket and jeans.",
            "images/000001.jpg#2": "The man wears a blue jacket.",  # the leftover, replaced from Ts-shikra
            "images/000001.jpg#3": "The man wears a blue jacket.",
            "images/000001.jpg#4": "He walks with his hands in his pockets.",
            "images/000002.jpg#1": "The woman wears a white dress.",  # the leftover, replaced from Ts-shikra
            "images/000002.jpg#2": "A woman with long hair and a white dress.",
            "images/000002.jpg#3": "The woman wears a white dress.",
            "images/000003.jpg#1": "An old man walking with a wooden cane.",  # its leftover had no Ts caption
        },
        "images": 3,
        "cleaning": {
            "template leftover replaced from a Ts file": 2,
            "template leftover dropped (no clean Ts caption of the image)": 1,
            "caption of an image not in the folder dropped": 1,
        },
    },
    "mals": {
        "pairs": {
            "gene_crop/c_g_a_0/000000.jpg#1": "a woman in a white top and black trousers",
            "gene_crop/i_g_a_0/000000.jpg#1": "a man with a grey backpack and blue shorts",
        },
        "images": 2,
        "cleaning": {"empty caption dropped": 1},
    },
    "synth_pedes": {
        "pairs": {
            "Part1/1/0.jpg#1": "A man in a black coat.",
            "Part1/1/0.jpg#2": "The man carries a red bag.",
            "Part1/1/1.jpg#1": "A man with a red bag.",
            "Part1/1/1.jpg#2": "He wears black boots.",
            "Part1/1/1.jpg#3": "A man walking away.",
            "Part2/2/0.jpg#1": "A girl in a pink dress.",
            "Part2/2/1.jpg#1": "A girl with pink shoes.",
            "Part2/2/1.jpg#2": "She looks to the left.",
        },
        "images": 4,
        "cleaning": {"empty caption dropped": 1},
    },
}
