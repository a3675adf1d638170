"""`ivt app`: search a gallery by description in the browser (Gradio), and the same page as a Hugging Face Space.

    ivt app --model MODEL --index INDEX            (or --images DIR: the index is built at start)
    ivt app --model MODEL --index INDEX --export_space DIR

The page: a description box with example queries, top-k, a gallery of the crops (shown whole, with score and file
name), search by an example crop (the nearest people by image embedding), and what the model is (its card facts) in
a corner. It works with no network: Gradio's analytics and version check are off, the theme uses the system's fonts
(no font CDN), nothing is shared unless asked. Bad input (an empty description, k out of range, an upload that is not
an image, or over the size limits) is a message on the page; an index made by another model is refused before the
page starts. The server hands out the result images only (each result is handed to Gradio as a copy, so nothing else
under the gallery's folder can be fetched through `/gradio_api/file=...`), and refuses uploads over `max_upload_mb`.
An index whose manifest reaches outside its gallery root is refused at load (`GalleryIndex.load`), and every file
is checked again when opened. Uploads and result copies share one bounded working folder (`SearchPage.trim_cache`),
and a port already in use is one error line (`check_port`).

`SearchPage` holds the search logic and its messages (testable without a browser); `build_page` lays it out;
`serve` loads everything and launches. The Space export (`ivt_hf.hub.space.export_space`) writes a Space folder whose
`app.py` calls `serve`, so the page code exists once, in this module.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import IVTInputError
from .search.faiss_cache import FaissSettings
from .search.index import GalleryIndex, GalleryIndexError

EXAMPLE_QUERIES = (
    "a woman in a red coat carrying a black backpack",
    "a man in a blue shirt and black trousers",
    "a person in a white top with a yellow bag",
)
MAX_K = 50
MAX_UPLOAD_MB = 10.0  # an example crop is tens of kB; the server refuses bigger uploads, the page says so
MAX_UPLOAD_PIXELS = 40_000_000  # checked from the header before decoding (a small file can decode to gigabytes)
CACHE_MAX_FILES = 1000  # the page's working folder (uploads, result copies): least recently used evicted beyond these
CACHE_MAX_MB = 256.0
CACHE_TRIM_SECONDS = 1.0  # how often a running server trims the working folder, searches or not
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
        lines.append(
            f"**R@1:** {record.metrics['R1']:.2f} % on {display_name(record.benchmark)} {record.split} "
            f"({record.protocol} protocol)"
        )
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
    max_upload_bytes: int = int(MAX_UPLOAD_MB * 2**20)
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    max_k: int = field(default=0)
    cache_root: str | os.PathLike | None = None  # where the working folder is made (`serve`: Gradio's upload folder)
    cache_max_files: int = CACHE_MAX_FILES
    cache_max_bytes: int = int(CACHE_MAX_MB * 2**20)
    _work_dir: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _result_paths: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # result folder: index path
    _positions: dict[str, int] | None = field(default=None, init=False, repr=False)  # index path: its position

    def __post_init__(self):
        self.index.check_model(self.model)  # an index made by another model: refused before anything is shown
        self.max_k = min(MAX_K, len(self.index))
        if self.cache_max_files < 1 or self.cache_max_bytes < 1:  # a search's own files are kept whatever the bound
            raise IVTInputError(
                f"the page's working folder must be allowed some files and bytes, got {self.cache_max_files} files "
                f"and {self.cache_max_bytes} bytes"
            )
        # results are handed to Gradio from the page's own working folder, never from the gallery's folder: the
        # server then needs no access to that folder, which may hold more than the indexed images. `serve` makes
        # Gradio keep its uploads here too, so one bound (`trim_cache`) keeps the whole page's disk use in check
        if self.cache_root is not None:
            Path(self.cache_root).mkdir(parents=True, exist_ok=True)
        self._work_dir = tempfile.TemporaryDirectory(prefix="ivt-app-", dir=self.cache_root)
        if self.faiss is not None:  # open the FAISS index now (built, or read from the index's cache), not at a query
            self.index.faiss_index(self.faiss)

    def _k(self, k: Any) -> int:
        try:
            value = int(k)
        except (TypeError, ValueError):
            raise IVTInputError(f"top-k must be a whole number from 1 to {self.max_k}, got {k!r}") from None
        if not 1 <= value <= self.max_k or value != float(k):
            raise IVTInputError(f"top-k must be a whole number from 1 to {self.max_k}, got {k!r}")
        return value

    @property
    def cache_dir(self) -> Path:
        """The page's working folder: the copies of results it handed out and, when served, Gradio's uploads; one
        entry (a folder) per file, the least recently used evicted beyond `cache_max_files` / `cache_max_bytes`."""
        return Path(self._work_dir.name)

    def result_file(self, path: str) -> Path:
        """The file the page hands to Gradio for the indexed image `path` (only ever a file under the gallery root:
        `GalleryIndex.resolve`): a hard link (or a copy, across file systems) in the page's working folder, made
        once per image and renamed into place (concurrent queries); its folder's time marks it recently used."""
        source = self.index.resolve(path)
        entry = self.cache_dir / f"result-{hashlib.sha256(path.encode()).hexdigest()[:20]}"
        self._result_paths[entry.name] = path
        target = entry / Path(path).name
        if target.is_file():
            os.utime(entry)
            return target
        entry.mkdir(exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            os.link(source, staging)
        except OSError:
            shutil.copyfile(source, staging)
        os.replace(staging, target)
        return target

    def trim_cache(self, in_use: tuple[str | os.PathLike, ...] = ()) -> None:
        """Evict the least recently used entries of the working folder (uploads, result copies) until at most
        `cache_max_files` files and `cache_max_bytes` bytes are left, keeping the entries of the files `in_use` (a
        search's upload and results, which its page is about to fetch). Runs after every search and, while served,
        every `CACHE_TRIM_SECONDS`, so a page that serves for months keeps a bounded folder; nothing outside the
        folder is touched (links are removed, never followed)."""
        folder = os.path.realpath(self.cache_dir)
        keep = {os.path.realpath(Path(path).parent) for path in in_use}
        with self._cache_lock:
            entries = [entry for entry in map(_usage, os.scandir(folder)) if entry is not None]
            count, total = sum(entry[2] for entry in entries), sum(entry[3] for entry in entries)
            for _, path, files, size in sorted(entries):
                if count <= self.cache_max_files and total <= self.cache_max_bytes:
                    break
                if path in keep:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    Path(path).unlink(missing_ok=True)
                count, total = count - files, total - size

    def _gallery(self, hits, upload: str | os.PathLike | None = None) -> list[tuple[str, str]]:
        """(image file, caption: rank, score, file name) per hit, for the Gallery; then the working folder is
        trimmed, keeping these files and the search's `upload`. An entry that leads outside the gallery root (a
        link changed since the index was loaded) is not opened: `GalleryIndexError`, shown as the page's message."""
        items = [(str(self.result_file(hit.path)), f"{hit.rank}. {hit.score:.2f} {_hit_name(hit)}") for hit in hits]
        if upload is not None and Path(os.path.realpath(upload)).parent.parent == self.cache_dir.resolve():
            os.utime(Path(upload).parent)  # an upload searched again is recently used
        self.trim_cache(tuple(path for path, _ in items) + ((upload,) if upload is not None else ()))
        return items

    def hit_paths(self, items: list[tuple[str, str]]) -> list[str | None]:
        """The index paths of gallery items this page handed out (`_gallery`), in order: what the page keeps in its
        state, so that a click on a result is looked up on the server, never from a path the browser sends."""
        return [self._result_paths.get(Path(path).parent.name) for path, _ in items]

    def footage_view(self, path: str | None) -> tuple[str | None, str, str]:
        """(the whole frame with the person's box drawn, a line saying where and when, a player of the video that
        starts at that moment) for the result `path`, from its footage record; (None, "", "") for an image indexed
        as it is. The frame and the video are handed out from the page's working folder, like the results."""
        from .footage.drawing import draw_box

        if self._positions is None:
            self._positions = {entry: number for number, entry in enumerate(self.index.paths)}
        record = self.index.footage[self._positions[path]] if path in self._positions else None
        if record is None:
            return None, "", ""
        try:
            entry = self.cache_dir / f"frame-{hashlib.sha256(path.encode()).hexdigest()[:20]}"
            frame = entry / "frame.jpg"
            if frame.is_file():
                os.utime(entry)
            else:
                entry.mkdir(exist_ok=True)
                staging = entry / f".frame-{uuid.uuid4().hex}.jpg"
                draw_box(self.index.resolve(record["frame_file"]), record["box"], staging, f"track {record['track']}")
                os.replace(staging, frame)
            video = self.result_file(record["video_file"]) if record["video_file"] else None
        except GalleryIndexError as error:
            return None, f"The frame cannot be shown: {error}", ""
        self.trim_cache((frame,) + ((video,) if video else ()))
        return str(frame), _footage_line(record), _player(video, record["time_s"]) if video else ""

    def check_upload(self, path: str | os.PathLike) -> None:
        """`IVTInputError` naming the file when an upload is over the byte or pixel limit (read from the image's
        header, before anything is decoded)."""
        from PIL import Image

        name = Path(path).name
        size = Path(path).stat().st_size
        if size > self.max_upload_bytes:
            raise IVTInputError(
                f"{name} is {size / 2**20:.1f} MB, over the {self.max_upload_bytes / 2**20:.1f} MB "
                "limit for an example crop"
            )
        try:
            with Image.open(path) as opened:
                width, height = opened.size
        except Image.DecompressionBombError as error:  # PIL's own ceiling, far above ours
            raise IVTInputError(f"{name}: {error}") from None
        except OSError:  # not an image: the decoder below says so
            return
        if width * height > self.max_upload_pixels:
            raise IVTInputError(
                f"{name} is {width} x {height} pixels, over the {self.max_upload_pixels:,}-pixel "
                "limit for an example crop"
            )

    def search_text(self, query: Any, k: Any) -> tuple[list[tuple[str, str]], str]:
        """(gallery items, status message) for a description."""
        if not isinstance(query, str) or not query.strip():
            return [], "Type a description of the person first."
        try:
            count = self._k(k)
        except ValueError as error:
            return [], str(error)
        hits = self.index.search([query.strip()], self.model, self.processor, k=count, faiss=self.faiss)[0]
        try:
            items = self._gallery(hits)
        except GalleryIndexError as error:
            return [], f"The results cannot be shown: {error}"
        return items, f"Top {len(hits)} of {len(self.index)} images for: {query.strip()}"

    def search_image(self, upload: Any, k: Any) -> tuple[list[tuple[str, str]], str]:
        """(gallery items, status message) for an example crop: the nearest images by image embedding."""
        from .evaluation.encoding import encode_images
        from .model.image_processing_ivt import to_rgb_uint8

        if upload is None:
            return [], "Upload a picture of a person first."
        path = upload if isinstance(upload, (str, os.PathLike)) else getattr(upload, "name", upload)
        try:
            count = self._k(k)
            self.check_upload(path)
            pixels = to_rgb_uint8(path, name=Path(str(path)).name)
        except (OSError, ValueError) as error:
            return [], f"That upload cannot be searched: {error}"
        queries = encode_images(self.model, self.processor, [pixels], progress=False)
        hits = self.index.search_embeddings(queries, k=count, faiss=self.faiss)[0]
        try:
            items = self._gallery(hits, upload=path)
        except GalleryIndexError as error:
            return [], f"The results cannot be shown: {error}"
        return items, f"Top {len(hits)} of {len(self.index)} images nearest to the uploaded crop"


def _hit_name(hit) -> str:
    """How a result is named under its crop: the file name, or for footage the source's name and the time."""
    record = hit.footage
    if not record:
        return Path(hit.path).name
    when = f"{record['time_s']:.1f} s" if record["time_s"] is not None else f"frame {record['frame']}"
    return f"{Path(record['source']).name} {when}"


def _footage_line(record: dict[str, Any]) -> str:
    """Markdown: where and when a result from footage was seen (the source's name in code, so it is never markup)."""
    x0, y0, x1, y1 = record["box"]
    when = f"**{record['time_s']:.2f} s**, " if record["time_s"] is not None else ""
    name = Path(record["source"]).name.replace("`", "'")
    return (
        f"`{name}` at {when}frame {record['frame']}, track {record['track']}, box ({x0}, {y0}) to ({x1}, {y1}), "
        f"score {record['score']:.2f}"
    )


def _player(video: Path, time_s: float | None) -> str:
    """An HTML5 player of the page's copy of the video, starting at `time_s` (a media fragment, `#t=`: the server
    answers range requests, so the browser seeks there before it plays)."""
    from html import escape
    from urllib.parse import quote

    start = f"{time_s or 0.0:.3f}"
    source = escape(f"gradio_api/file={quote(str(video))}#t={start}", quote=True)
    return (
        f'<video id="hit-player" src="{source}" data-start="{start}" controls muted playsinline preload="auto" '
        'style="width: 100%; max-height: 480px"></video>'
    )


def _usage(item: os.DirEntry) -> tuple[int, str, int, int] | None:
    """(last use in ns, path, files, bytes) of one entry of the page's working folder (a file, or a folder of them:
    links counted, not followed); None when it went meanwhile (Gradio renames uploads into place)."""
    try:
        used = item.stat(follow_symlinks=False).st_mtime_ns
        if not item.is_dir(follow_symlinks=False):
            return used, item.path, 1, item.stat(follow_symlinks=False).st_size
        files = [os.path.join(parent, name) for parent, _, names in os.walk(item.path) for name in names]
        return used, item.path, len(files), sum(os.lstat(file).st_size for file in files)
    except FileNotFoundError:
        return None


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
            query = gr.Textbox(
                label="Description", placeholder=page.examples[0] if page.examples else "", elem_id="query", scale=4
            )
            k = gr.Slider(1, page.max_k, value=min(10, page.max_k), step=1, label="top-k", elem_id="top-k", scale=1)
            button = gr.Button("Search", variant="primary", elem_id="search", scale=1)
        if page.examples:
            gr.Examples(list(page.examples), inputs=query, label="Example descriptions")
        with gr.Row(equal_height=True):
            upload = gr.File(
                label="Or search by an example crop: a picture of a person",
                file_types=["image"],
                type="filepath",
                elem_id="upload",
                height=140,
                scale=4,
            )
            image_button = gr.Button("Find this person", elem_id="search-image", scale=1)
        status = gr.Markdown(elem_id="status")
        gallery = gr.Gallery(
            label="Results", columns=5, object_fit="contain", height="auto", elem_id="results", allow_preview=True
        )
        if not any(record is not None for record in page.index.footage):
            for trigger in (button.click, query.submit):
                trigger(page.search_text, inputs=[query, k], outputs=[gallery, status])
            image_button.click(page.search_image, inputs=[upload, k], outputs=[gallery, status])
        else:
            _footage_panel(gr, page, (button, query, image_button), (query, k, upload), (gallery, status))
    return blocks


def _footage_panel(gr, page: SearchPage, triggers, inputs, outputs) -> None:
    """For an index of footage: a click on a result shows its whole frame with the box drawn, where and when it was
    seen, and the video from that moment. The page keeps the shown results' index paths in its state
    (`SearchPage.hit_paths`); a new search clears the panel."""
    button, query_box, image_button = triggers
    query, k, upload = inputs
    hits = gr.State([])
    with gr.Row(equal_height=False):
        frame = gr.Image(label="Where it was seen", type="filepath", interactive=False, elem_id="hit-frame", scale=3)
        with gr.Column(scale=2):
            where = gr.Markdown(elem_id="hit-info")
            player = gr.HTML(elem_id="hit-video")

    def text_search(query_text, count):
        items, message = page.search_text(query_text, count)
        return items, message, page.hit_paths(items), None, "", ""

    def image_search(picture, count):
        items, message = page.search_image(picture, count)
        return items, message, page.hit_paths(items), None, "", ""

    def show(paths, event):
        number = event.index if isinstance(event.index, int) else -1
        return page.footage_view(paths[number] if 0 <= number < len(paths) else None)

    show.__annotations__["event"] = gr.SelectData  # how Gradio knows to pass the click (a real type, not a string)

    cleared = [*outputs, hits, frame, where, player]
    for trigger in (button.click, query_box.submit):
        trigger(text_search, inputs=[query, k], outputs=cleared)
    image_button.click(image_search, inputs=[upload, k], outputs=cleared)
    outputs[0].select(show, inputs=[hits], outputs=[frame, where, player])


def upload_limit_bytes(max_upload_mb: float | None) -> int:
    """The one check of the upload limit (`--max_upload_mb`; None: `MAX_UPLOAD_MB`), in bytes: a finite number of MB
    above 0, refused in one line before anything loads."""
    limit = MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    if not (math.isfinite(limit) and limit > 0):
        raise IVTInputError(f"--max_upload_mb must be a finite number above 0, got {limit}")
    return int(limit * 2**20)


def load_page(
    model: str,
    index: str | os.PathLike | None = None,
    images: str | os.PathLike | None = None,
    examples: tuple[str, ...] | None = None,
    faiss: FaissSettings | None = None,
    max_upload_mb: float | None = None,
    *,
    cache_root: str | os.PathLike | None = None,
    cache_max_files: int = CACHE_MAX_FILES,
    cache_max_mb: float = CACHE_MAX_MB,
    runtime: str = "torch",
) -> SearchPage:
    """Model (a folder or a Hub id) and index (a folder, or built now from `images` with a progress bar); the
    page's working folder is made under `cache_root` and bounded by `cache_max_files` / `cache_max_mb`; uploads over
    `max_upload_mb` (None: `MAX_UPLOAD_MB`) are refused."""
    from .onnx.runtime import load_for_runtime

    max_upload_bytes = upload_limit_bytes(max_upload_mb)
    if (index is None) == (images is None):
        raise IVTInputError("give the index (--index) or a folder of images to index now (--images), one of them")
    loaded_model, processor = load_for_runtime(model, runtime)  # `runtime`: torch, or onnx (an export)
    if index is not None:
        gallery = GalleryIndex.load(index)
    else:
        gallery = GalleryIndex.build(loaded_model, processor, images, on_invalid="skip", model_name_or_path=model)
    model_dir = Path(model) if Path(model).is_dir() else None
    return SearchPage(
        gallery,
        loaded_model,
        processor,
        describe_model(model, model_dir),
        examples=tuple(examples) if examples else EXAMPLE_QUERIES,
        faiss=faiss,
        max_upload_bytes=max_upload_bytes,
        cache_root=cache_root,
        cache_max_files=cache_max_files,
        cache_max_bytes=int(cache_max_mb * 2**20),
    )


class PortInUseError(IVTInputError):
    """The page's port is taken: another server listens there."""


def check_port(host: str, port: int) -> None:
    """`PortInUseError` naming the port when it cannot be listened on because something already does, found by
    binding it the way the server will (`SO_REUSEADDR`, as uvicorn does), so that `ivt app` says so in one line
    before it loads a model; a host that is no address of this machine is an `IVTInputError` too."""
    import socket

    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise IVTInputError(f"cannot listen on --host {host}: {error.strerror}") from None
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is already in use (another server listens there): choose another "
                    "with --port"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise IVTInputError(f"cannot listen on {host}:{port}: {host} is no address of this machine") from None
            raise


@contextmanager
def _gradio_temp_dir(folder: Path):
    """Gradio reads GRADIO_TEMP_DIR when a component or the server is made: pointed at the page's working folder
    (inside the upload folder Gradio would use anyway) while the page is built and launched, it keeps uploads there
    and serves the result copies without copying them again, so the page's one bound covers all its files."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before


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
    max_upload_mb: float | None = None,
    cache_max_files: int = CACHE_MAX_FILES,
    cache_max_mb: float = CACHE_MAX_MB,
    runtime: str = "torch",
):
    """Load, lay out and launch the page; returns the Blocks (with `block=False` it returns at once: `close()` it).

    A port already in use is a `PortInUseError`, found before anything is loaded. No `allowed_paths`: the server
    serves its own files, uploads and the copies of the results it handed out, and nothing of the gallery's folder;
    uploads over `max_upload_mb` (None: `MAX_UPLOAD_MB`) are refused by the server (and by the page). Uploads and
    result copies live in the page's working folder under Gradio's upload folder (GRADIO_TEMP_DIR), at most
    `cache_max_files` files and `cache_max_mb` MB of them, the least recently used evicted (`SearchPage.trim_cache`)."""
    upload_limit_bytes(max_upload_mb)  # a bad limit: one line before gradio and the model load
    os.environ.update(OFFLINE_ENVIRONMENT)  # before gradio is imported: no analytics, no version check
    import gradio as gr
    from gradio.utils import get_upload_folder

    check_port(host, port)
    page = load_page(
        model,
        index,
        images,
        examples,
        faiss,
        max_upload_mb,
        cache_root=get_upload_folder(),
        cache_max_files=cache_max_files,
        cache_max_mb=cache_max_mb,
        runtime=runtime,
    )
    with _gradio_temp_dir(page.cache_dir):
        blocks = build_page(page, title)
        try:
            blocks.launch(
                server_name=host,
                server_port=port,
                share=share,
                prevent_thread_lock=True,
                quiet=not block,
                max_file_size=page.max_upload_bytes,
                footer_links=[],
                theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS),
            )
        except OSError:
            check_port(host, port)  # taken since the check above: one line, not Gradio's traceback
            raise
    threading.Thread(target=_trim_while_serving, args=(page, blocks), daemon=True, name="ivt-app-cache").start()
    if block:
        blocks.block_thread()  # until Ctrl-C
    return blocks


def _trim_while_serving(page: SearchPage, blocks, interval: float = CACHE_TRIM_SECONDS) -> None:
    """Trim the page's working folder every `interval` seconds while the server runs: uploads that are never
    searched (a script posting to the upload route, say) are bounded too, not only those a search trims after."""
    import time

    while blocks.is_running:
        try:
            page.trim_cache()
        except FileNotFoundError:  # the page's folder went: the page was closed
            return
        time.sleep(interval)
