"""The Hugging Face Space export of the search page (`ivt app --export_space`) and the ivt_hf wheel it ships.

`export_space` writes a Space folder whose `app.py` calls `ivt_hf.app.serve`, so the page code exists once, in
`ivt_hf.app`; this module only writes files (the index and its gallery, the model folder, the requirements, a wheel
built offline from this source tree by `package_wheel`). It lives in `hub/` because it is a way of sharing a model,
beside `push.py`, and imports nothing of the page: `hub` sits below `app`.

A Space for onnxruntime (`runtime="onnx"`, an `ivt export onnx` folder) installs no torch: its requirements are
onnxruntime, gradio and the few of ivt_hf's dependencies the page needs without torch (`space_requirements`), and
ivt_hf itself travels as its source beside `app.py` (`ivt_hf/`), since the wheel's requirements hold torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import IVTInputError
from ..search.index import GalleryIndex, resolve_under_root

SPACE_APP = '''"""A Hugging Face Space: IVT person search over the gallery in `index/` (page code: `ivt_hf.app`)."""

import os

from ivt_hf.app import serve

serve(model={model!r}, index="index", host="0.0.0.0", port=int(os.environ.get("PORT", 7860)), title={title!r}{runtime})
'''


def export_space(
    output_dir: str | os.PathLike,
    model: str,
    index: str | os.PathLike,
    *,
    title: str = "IVT person search",
    package: str | None = None,
    overwrite: bool = False,
    runtime: str = "torch",
) -> Path:
    """Write a Space folder: `app.py` (calls `serve`), `requirements.txt`, `README.md` with the Space front matter,
    `index/` (the index with its images under `index/gallery/`) and, for a model folder, `model/`.

    `package` is the requirement that installs this package on the Space. By default the Space needs no published
    package: a wheel of this ivt_hf, built offline from its source tree (`package_wheel`), is shipped in `wheels/`
    and `requirements.txt` names it, beside the page's own dependencies (the `app` extra without Playwright, which
    only the tests use). The folder is written all at once; `overwrite`
    replaces only a folder that ivt_hf wrote (`ivt_hf.outputs.writing_output_dir`).

    `runtime="onnx"`: `model` is a folder written by `ivt export onnx` (copied to `model/`), the page runs it with
    onnxruntime, and the Space installs no torch (module docstring); `package` does not apply (a published ivt_hf
    requires torch).
    """
    from ..outputs import writing_output_dir

    if runtime not in SPACE_RUNTIMES:
        raise IVTInputError(f"runtime must be one of {', '.join(SPACE_RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx" and (package is not None or not Path(model).is_dir()):
        raise IVTInputError(
            "a Space for onnxruntime ships an ONNX folder (ivt export onnx) and ivt_hf's source, not "
            + ("a package requirement (--package; a published ivt_hf requires torch)" if package else f"{model!r}")
        )
    gallery = GalleryIndex.load(index)  # checked before anything is written
    if Path(model).is_dir():
        _check_model_links(model, runtime)
    with writing_output_dir(output_dir, overwrite=overwrite, command="ivt app --export_space") as staging:
        _write_space(staging, model, gallery, title=title, package=package, runtime=runtime)
    return Path(output_dir)


def _copy_gallery(gallery: GalleryIndex, images: Path) -> tuple[list[str], list[dict | None]]:
    """Copy the gallery's images, and for footage the whole frames and videos its records name, under `images`;
    `(entries, footage records)` naming the copies. Each file is resolved under the gallery root (or a
    `GalleryIndexError`: nothing else is copied) and lands under `images/` whatever the entry said."""
    real_root = os.path.realpath(gallery.manifest["root"])

    def copy(entry: str) -> str:
        source = gallery.resolve(entry)
        name = os.path.relpath(source, real_root)
        if not (images / name).exists():  # frames and videos are shared by several records
            (images / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, images / name)
        return name

    names = [copy(path) for path in gallery.paths]
    footage = [
        None
        if record is None
        else {
            **record,
            "frame_file": copy(record["frame_file"]),
            "video_file": record["video_file"] and copy(record["video_file"]),
        }
        for record in gallery.footage
    ]
    return names, footage


def _write_space(
    output_dir: Path, model: str, gallery: GalleryIndex, *, title: str, package: str | None, runtime: str
) -> Path:
    """`export_space`'s files, written into `output_dir` (its staging folder)."""
    import gradio

    from .. import __version__

    model_ref = model
    output_dir.mkdir(parents=True, exist_ok=True)
    if Path(model).is_dir():
        shutil.copytree(model, output_dir / "model")  # its links checked by `export_space`
        model_ref = "model"
    names, footage = _copy_gallery(gallery, output_dir / "index" / "gallery")
    manifest = {**gallery.manifest, "root": "gallery", "model": model_ref}  # relative: resolved against index/
    GalleryIndex(gallery.embeddings, names, manifest, footage=footage).save(output_dir / "index")
    onnx = runtime == "onnx"
    (output_dir / "app.py").write_text(
        SPACE_APP.format(model=model_ref, title=title, runtime=', runtime="onnx"' if onnx else "")
    )
    if onnx:  # the source, found beside app.py; its wheel's requirements would install torch
        shutil.copytree(PACKAGE_DIR, output_dir / "ivt_hf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    elif package is None:  # the wheel, by a path relative to the Space's root (where pip runs)
        package = f"./{WHEELS_DIR}/{package_wheel(output_dir / WHEELS_DIR).name}"
    requirements = space_requirements(runtime) if onnx else [package, *space_requirements()]
    (output_dir / "requirements.txt").write_text("\n".join(requirements) + "\n")
    front = {
        "title": title,
        "emoji": "🔎",
        "colorFrom": "indigo",
        "colorTo": "gray",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "pinned": False,
    }
    if model_ref != "model":
        front["models"] = [model_ref]
    header = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items())
    shipped = f", and ivt_hf {__version__} as a wheel in `{WHEELS_DIR}/`" if (output_dir / WHEELS_DIR).is_dir() else ""
    if onnx:
        shipped = f", and ivt_hf {__version__}'s source in `ivt_hf/`; it runs the model with onnxruntime, without torch"
    (output_dir / "README.md").write_text(
        f"---\n{header}\n---\n\n# {title}\n\nSearch {len(gallery)} pedestrian crops by description with IVT "
        f"(`{model}`). The page is `ivt_hf.app`; this Space holds only its settings, the index and the gallery"
        f"{shipped}.\n"
    )
    return output_dir


def _check_model_links(model: str | os.PathLike, runtime: str = "torch") -> None:
    """`IVTInputError` naming the first file or folder of a model folder that links outside it: the Space copies
    the folder (links followed) and is published, so a link to `/etc/passwd` would ship that file. The folder may be
    a snapshot of the Hub's cache (`.../snapshots/REVISION/`), whose files link into the repo's `blobs/`: there the
    repo's cache folder is the bound. An ONNX folder (`runtime="onnx"`) is checked by the page when it loads."""
    from .folder import check_model_folder

    model_dir = check_model_folder(model) if runtime == "torch" else Path(model)
    bound = model_dir.parent.parent if model_dir.parent.name == "snapshots" else model_dir
    for parent, folders, files in os.walk(model_dir):  # copytree follows links, of folders and of files
        for path in (os.path.join(parent, name) for name in folders + files):
            if resolve_under_root(bound, os.path.relpath(path, bound)) is None:
                raise IVTInputError(
                    f"{path} in the model folder links outside it ({os.path.realpath(path)}): not copied"
                )


WHEELS_DIR = "wheels"
SOURCE_TREE_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "NOTICE")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ivt_hf, in a source tree or installed
SPACE_RUNTIMES = ("torch", "onnx")
# what the page needs of ivt_hf's own dependencies where torch is not installed: the config and processor
# (transformers, tokenizers, huggingface-hub), the index (numpy, safetensors), images (pillow), progress bars (tqdm);
# not torch, datasets, accelerate, evaluate (training and evaluation)
ONNX_SPACE_PACKAGES = ("transformers", "tokenizers", "huggingface-hub", "numpy", "pillow", "safetensors", "tqdm")


def space_requirements(runtime: str = "torch") -> list[str]:
    """The page's dependencies beyond ivt_hf's own, with the installed ivt_hf's version ranges: its `app` extra
    without Playwright (the browser tests' driver, never needed to serve). For `runtime="onnx"` all the Space
    installs: also onnxruntime (of the `onnx` extra, not the exporter) and `ONNX_SPACE_PACKAGES`, no torch."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = []
    for line in requires("ivt_hf") or []:
        requirement = Requirement(line)
        name, marker = canonicalize_name(requirement.name), requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):  # ivt_hf's own
            wanted = runtime == "onnx" and name in ONNX_SPACE_PACKAGES
        elif marker.evaluate({"extra": "app"}):
            wanted = name != "playwright"
        else:
            wanted = runtime == "onnx" and name == "onnxruntime" and marker.evaluate({"extra": "onnx"})
        if wanted:
            requirement.marker = None
            found.append(str(requirement))
    expected = {"gradio", *(("onnxruntime", *ONNX_SPACE_PACKAGES) if runtime == "onnx" else ())}
    missing = sorted(expected - {canonicalize_name(Requirement(line).name) for line in found})
    if missing:  # an install older than its source tree (an editable one): the Space would lack them
        raise IVTInputError(
            f"the installed ivt_hf's metadata lists no {', '.join(missing)}: install ivt_hf again (pip install -e .)"
        )
    return found


def package_wheel(destination: str | os.PathLike) -> Path:
    """Build a wheel of this ivt_hf from the source tree it runs from, offline (`pip wheel --no-deps
    --no-build-isolation --no-index`, with the setuptools already installed), into `destination`; returns its path.

    The tree's build files and `src/` are copied to a temporary folder first, so the build writes nothing into the
    source tree. An ivt_hf installed from a wheel has no source tree: pass `package` (a requirement the Space can
    install) instead."""
    import importlib.util
    import subprocess
    import sys

    package_dir = Path(__file__).resolve().parents[1]  # src/ivt_hf
    source = package_dir.parents[1]
    if package_dir.parent.name != "src" or not (source / "pyproject.toml").is_file():
        raise IVTInputError(
            f"ivt_hf at {package_dir} is not in a source tree (no {source / 'pyproject.toml'}), "
            "so no wheel can be built for the Space: pass --package with a requirement it can "
            "install"
        )
    if importlib.util.find_spec("setuptools") is None:
        raise IVTInputError(
            "building the Space's ivt_hf wheel needs setuptools (pip install setuptools), or pass "
            "--package with a requirement the Space can install"
        )
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ivt-wheel-") as work:
        for name in SOURCE_TREE_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, Path(work) / name)
        shutil.copytree(
            package_dir, Path(work) / "src" / "ivt_hf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        command = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(destination),
            work,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(destination.glob("ivt_hf-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise RuntimeError(
            f"building the ivt_hf wheel from {source} failed ({' '.join(command[:8])}):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    return wheels[0]
