"""`ivt app`: search a gallery by description in the browser (Gradio), and the same page as a Hugging Face Space.

    ivt app --model MODEL --index INDEX            (or --images DIR: the index is built at start)
    ivt app --model MODEL --index INDEX --export_space DIR

The page: a description box with example queries, top-k, a gallery of the crops (shown whole, with score and file
name), search by an example crop (the nearest people by image embedding), and what the model is (its card facts) in
a corner. It works with no network: Gradio's analytics and version check are off, the theme uses the system's fonts
(no font CDN), nothing is shared unless asked. Bad input (an empty description, k out of range, an upload that is not
an image) is a message on the page; an index made by another model is refused before the page starts.

`SearchPage` holds the search logic and its messages (testable without a browser); `build_page` lays it out;
`serve` loads everything and launches; `export_space` writes a Space folder whose `app.py` calls `serve`, so the
page code exists once, in this module.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IVTInputError, OutputExistsError
from .search.index import FaissSettings, GalleryIndex

EXAMPLE_QUERIES = (
    "a woman in a red coat carrying a black backpack",
    "a man in a blue shirt and black trousers",
    "a person in a white top with a yellow bag",
)
MAX_K = 50
OFFLINE_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # the default theme would fetch a web font
MONO_FONTS = ["ui-monospace", "monospace"]


def describe_model(model_name: str, model_dir: Path | None) -> str:
    """Markdown for the page's corner: the model's title, what it was trained on and its recorded R@1, read from the
    folder's fact files (for a Hub id: the repo's JSON files, which `ivt push` uploads beside the weights)."""
    lines = [f"**Model:** `{model_name}`"]
    if model_dir is None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            model_dir = Path(snapshot_download(model_name, allow_patterns=["*.json"]))
        except (HfHubHTTPError, LocalEntryNotFoundError, ConnectionError, OSError, ValueError):  # no facts: still works
            return lines[0]
    from .data.specs import display_name
    from .hub.facts import read_folder_facts

    try:
        facts = read_folder_facts(model_dir)
    except ValueError as error:  # unreadable fact files: say so, the search still works
        return f"{lines[0]}  \n(model facts unreadable: {error})"
    if facts.title:
        lines.insert(0, f"**{facts.title}**")
    if facts.evaluations:
        record = next(iter(facts.evaluations.values()))
        lines.append(f"**R@1:** {record.metrics['R1']:.2f} % on {display_name(record.benchmark)} {record.split} "
                     f"({record.protocol} protocol)")  # fmt: skip
    if facts.training and facts.training.get("dataset"):
        lines.append(f"**Trained on:** {display_name(str(facts.training['dataset']))}")
    return "  \n".join(lines)


@dataclass
class SearchPage:
    """What the page does, with its messages: text search, example-crop search, checks of every input."""

    index: GalleryIndex
    model: Any
    processor: Any
    model_facts: str = ""
    examples: tuple[str, ...] = EXAMPLE_QUERIES
    faiss: FaissSettings | None = None  # None: exact search; else a FAISS index (approximate for ivf / hnsw)
    max_k: int = field(default=0)

    def __post_init__(self):
        self.index.check_model(self.model)  # an index made by another model: refused before anything is shown
        self.max_k = min(MAX_K, len(self.index))
        if self.faiss is not None:  # build the FAISS index now (minutes for millions of images), not at a first query
            self.index.search_embeddings(self.index.embeddings[:1], k=1, faiss=self.faiss)

    def _k(self, k: Any) -> int:
        try:
            value = int(k)
        except (TypeError, ValueError):
            raise IVTInputError(f"top-k must be a whole number from 1 to {self.max_k}, got {k!r}") from None
        if not 1 <= value <= self.max_k or value != float(k):
            raise IVTInputError(f"top-k must be a whole number from 1 to {self.max_k}, got {k!r}")
        return value

    def _gallery(self, hits) -> list[tuple[str, str]]:
        """(image file, caption: rank, score, file name) per hit, for the Gallery."""
        return [(str(self.index.resolve(hit.path)), f"{hit.rank}. {hit.score:.2f} {Path(hit.path).name}")
                for hit in hits]  # fmt: skip

    def search_text(self, query: Any, k: Any) -> tuple[list[tuple[str, str]], str]:
        """(gallery items, status message) for a description."""
        if not isinstance(query, str) or not query.strip():
            return [], "Type a description of the person first."
        try:
            count = self._k(k)
        except ValueError as error:
            return [], str(error)
        hits = self.index.search([query.strip()], self.model, self.processor, k=count, faiss=self.faiss)[0]
        return self._gallery(hits), f"Top {len(hits)} of {len(self.index)} images for: {query.strip()}"

    def search_image(self, upload: Any, k: Any) -> tuple[list[tuple[str, str]], str]:
        """(gallery items, status message) for an example crop: the nearest images by image embedding."""
        from .evaluation.encoding import encode_images
        from .model.image_processing_ivt import to_rgb_uint8

        if upload is None:
            return [], "Upload a picture of a person first."
        path = upload if isinstance(upload, (str, os.PathLike)) else getattr(upload, "name", upload)
        try:
            count = self._k(k)
            pixels = to_rgb_uint8(path, name=Path(str(path)).name)
        except (OSError, ValueError) as error:
            return [], f"That upload cannot be searched: {error}"
        queries = encode_images(self.model, self.processor, [pixels], progress=False)
        hits = self.index.search_embeddings(queries, k=count, faiss=self.faiss)[0]
        return self._gallery(hits), f"Top {len(hits)} of {len(self.index)} images nearest to the uploaded crop"


def build_page(page: SearchPage, title: str = "IVT person search"):
    """The Gradio Blocks of the search page (not launched)."""
    import gradio as gr

    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        with gr.Row():
            with gr.Column(scale=3):
                gr.Markdown(f"# {title}\nDescribe a person; the gallery shows the best matching crops, best first.")
            with gr.Column(scale=2, min_width=240):
                gr.Markdown(page.model_facts or "", elem_id="model-facts")
        with gr.Row():
            query = gr.Textbox(label="Description", placeholder=page.examples[0] if page.examples else "",
                               elem_id="query", scale=4)  # fmt: skip
            k = gr.Slider(1, page.max_k, value=min(10, page.max_k), step=1, label="top-k", elem_id="top-k", scale=1)
            button = gr.Button("Search", variant="primary", elem_id="search", scale=1)
        if page.examples:
            gr.Examples(list(page.examples), inputs=query, label="Example descriptions")
        with gr.Row(equal_height=True):
            upload = gr.File(label="Or search by an example crop: a picture of a person", file_types=["image"],
                             type="filepath", elem_id="upload", height=140, scale=4)  # fmt: skip
            image_button = gr.Button("Find this person", elem_id="search-image", scale=1)
        status = gr.Markdown(elem_id="status")
        gallery = gr.Gallery(label="Results", columns=5, object_fit="contain", height="auto", elem_id="results",
                             allow_preview=True)  # fmt: skip
        for trigger in (button.click, query.submit):
            trigger(page.search_text, inputs=[query, k], outputs=[gallery, status])
        image_button.click(page.search_image, inputs=[upload, k], outputs=[gallery, status])
    return blocks


def load_page(
    model: str,
    index: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    examples: tuple[str, ...] | None = None,
    faiss: FaissSettings | None = None,
) -> SearchPage:
    """Model (a folder or a Hub id) and index (a folder, or built now from `images` with a progress bar)."""
    from .hub.folder import load_model_and_processor

    if (index is None) == (images is None):
        raise IVTInputError("give the index (--index) or a folder of images to index now (--images), one of them")
    loaded_model, processor = load_model_and_processor(model)
    if index is not None:
        gallery = GalleryIndex.load(index)
    else:
        gallery = GalleryIndex.build(loaded_model, processor, images, on_invalid="skip", model_name_or_path=model)
    model_dir = Path(model) if Path(model).is_dir() else None
    return SearchPage(gallery, loaded_model, processor, describe_model(model, model_dir),
                      examples=tuple(examples) if examples else EXAMPLE_QUERIES, faiss=faiss)  # fmt: skip


def serve(
    model: str,
    index: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    examples: tuple[str, ...] | None = None,
    title: str = "IVT person search",
    block: bool = True,
    faiss: FaissSettings | None = None,
):
    """Load, lay out and launch the page; returns the Blocks (with `block=False` it returns at once: `close()` it)."""
    os.environ.update(OFFLINE_ENVIRONMENT)  # before gradio is imported: no analytics, no version check
    import gradio as gr

    page = load_page(model, index, images, examples, faiss)
    blocks = build_page(page, title)
    root = page.index.manifest.get("root")
    blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=not block,
                  allowed_paths=[root] if root else None, footer_links=[],
                  theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS))  # fmt: skip
    return blocks


SPACE_APP = '''"""A Hugging Face Space: IVT person search over the gallery in `index/` (page code: `ivt_hf.app`)."""

import os

from ivt_hf.app import serve

serve(model={model!r}, index="index", host="0.0.0.0", port=int(os.environ.get("PORT", 7860)), title={title!r})
'''


def export_space(
    output_dir: str | os.PathLike,
    model: str,
    index: str | os.PathLike,
    *,
    title: str = "IVT person search",
    package: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Space folder: `app.py` (calls `serve`), `requirements.txt`, `README.md` with the Space front matter,
    `index/` (the index with its images under `index/gallery/`) and, for a model folder, `model/`.

    `package` is the requirement that installs this package on the Space (default `ivt_hf[app]==VERSION`; give a
    git URL when the package is not on an index the Space can reach).
    """
    import gradio

    from . import __version__
    from .hub.folder import check_model_folder

    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{output_dir} is not empty; pass --overwrite to replace it")
        shutil.rmtree(output_dir)
    gallery = GalleryIndex.load(index)  # checked before anything is written
    model_ref = model
    output_dir.mkdir(parents=True, exist_ok=True)
    if Path(model).is_dir():
        shutil.copytree(check_model_folder(model), output_dir / "model")
        model_ref = "model"
    images = output_dir / "index" / "gallery"
    for path in gallery.paths:
        target = images / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(gallery.resolve(path), target)
    manifest = {**gallery.manifest, "root": "gallery", "model": model_ref}  # relative: resolved against index/
    GalleryIndex(gallery.embeddings, gallery.paths, manifest).save(output_dir / "index")
    (output_dir / "app.py").write_text(SPACE_APP.format(model=model_ref, title=title))
    requirement = package or f"ivt_hf[app]=={__version__}"
    (output_dir / "requirements.txt").write_text(f"{requirement}\n")
    front = {"title": title, "emoji": "🔎", "colorFrom": "indigo", "colorTo": "gray", "sdk": "gradio",
             "sdk_version": gradio.__version__, "app_file": "app.py", "pinned": False}  # fmt: skip
    if model_ref != "model":
        front["models"] = [model_ref]
    header = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items())
    (output_dir / "README.md").write_text(
        f"---\n{header}\n---\n\n# {title}\n\nSearch {len(gallery)} pedestrian crops by description with IVT "
        f"(`{model}`). The page is `ivt_hf.app`; this Space holds only its settings, the index and the gallery.\n"
    )
    return output_dir
