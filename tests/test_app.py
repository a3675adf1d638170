"""`ivt app` in a real headless browser (Debian's chromium driven by Playwright): type a description, wait for k
decoded images, check the top result against the index, search by an example crop, bad input as messages on the
page, and no request leaving 127.0.0.1; over HTTP, the server hands out the result images and nothing else of the
gallery's folder, and refuses an over-size upload. Then the Space export runs the same page from its own folder.

Needs the app extra (`pip install -e ".[app]"`) and chromium (`.ci/run` installs it with apt-get when missing). CI
sets `IVT_REQUIRE_BROWSER=1`, so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from helpers.launchers import free_port
from PIL import Image

from ivt_hf import IVTConfig, IVTModel, IVTProcessor
from ivt_hf.hub import save_model_folder
from ivt_hf.search import GalleryIndex, GalleryIndexError, ModelMismatchError, build_index

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if os.environ.get("IVT_REQUIRE_BROWSER") != "1":
    pytest.importorskip("gradio")
    pytest.importorskip("playwright")
    if CHROMIUM is None:
        pytest.skip("no chromium (apt-get install chromium)", allow_module_level=True)

QUERY = "a woman in a red coat carrying a black backpack"


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """12 tall crops (two colours of coat), a tiny model folder and their index."""
    root = tmp_path_factory.mktemp("app")
    rng = np.random.default_rng(0)
    for number in range(12):
        pixels = rng.integers(0, 60, (96, 40, 3), dtype=np.uint8)
        pixels[20:70, 5:35, 0 if number % 2 else 2] += 180  # a red or blue "coat"
        (root / "gallery").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / "gallery" / f"person_{number:02d}.png")
    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", patch_stride=16)
    save_model_folder(IVTModel(config), IVTProcessor.from_config(config), root / "model")
    model, processor = IVTModel.from_pretrained(root / "model"), IVTProcessor.from_pretrained(root / "model")
    build_index(model, processor, root / "gallery", root / "index", progress=False)
    (root / "not_an_image.png").write_text("this is text")
    (root / "gallery" / "secret.txt").write_text("not for the web")  # beside the images, not indexed
    Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(root / "large.png")  # about 270 kB
    return root


def _header_only_png(path, width: int, height: int) -> None:
    """A PNG of a few bytes whose header says `width` x `height`: decoding it would need width x height x 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _http_status(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    return playwright, browser


def _wait_for_images(page, count: int, timeout: float = 30.0) -> list[str]:
    """Captions of the gallery once `count` of its images are decoded (they load lazily)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decoded = page.evaluate(
            """() => [...document.querySelectorAll('#results img')]
                .filter(img => img.complete && img.naturalWidth > 0).length"""
        )
        if decoded >= count:
            return page.evaluate(
                """() => [...document.querySelectorAll('#results .caption-label, #results [class*=caption]')]
                    .map(node => node.textContent.trim()).filter(Boolean)"""
            )
        time.sleep(0.2)
    raise AssertionError(f"the gallery did not show {count} decoded images in {timeout} s")


def test_the_search_page_in_a_browser(gallery, tmp_path, monkeypatch):
    from ivt_hf.app import serve

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    port = free_port()
    blocks = serve(str(gallery / "model"), gallery / "index", port=port, block=False, max_upload_mb=0.1)
    playwright, browser = _browser()
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        assert "Model:" in page.inner_text("#model-facts")

        page.fill("#query textarea", QUERY)
        page.click("#search")
        captions = _wait_for_images(page, 10)  # the default top-k
        index = GalleryIndex.load(gallery / "index")
        model, processor = IVTModel.from_pretrained(gallery / "model"), IVTProcessor.from_pretrained(gallery / "model")
        expected = index.search(QUERY, model, processor, k=10)[0]
        assert len(captions) >= 10 and captions[0] == f"1. {expected[0].score:.2f} {expected[0].path}", captions[:3]
        fits = page.evaluate(
            "() => [...document.querySelectorAll('#results img')].map(img => getComputedStyle(img).objectFit)"
        )
        assert set(fits) == {"contain"}  # tall crops shown whole, not cropped
        assert "Top 10 of 12 images" in page.inner_text("#status")
        sources = page.evaluate("() => [...document.querySelectorAll('#results img')].map(img => img.src)")
        status, body = _http_status(sources[0])  # a result image: served, the indexed file's bytes
        assert status == 200 and body == (gallery / "gallery" / expected[0].path).read_bytes()
        for name in ("secret.txt", "person_00.png"):  # the gallery's folder itself: not served, indexed or not
            status, body = _http_status(f"http://127.0.0.1:{port}/gradio_api/file={gallery / 'gallery' / name}")
            assert status == 403 and b"not for the web" not in body, (name, status)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert (tmp_path / "page.png").stat().st_size > 10_000

        page.fill("#query textarea", "   ")  # bad input: a message on the page, no traceback
        page.click("#search")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('Type a description')")

        page.set_input_files("#upload input[type=file]", str(gallery / "gallery" / "person_03.png"))
        page.wait_for_timeout(500)
        page.click("#search-image")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('nearest to the uploaded')")
        captions = _wait_for_images(page, 10)
        assert captions[0].endswith("person_03.png")  # a crop's nearest image is itself
        page.click("#upload button[aria-label='Clear']")  # an uploaded file replaces the upload area until cleared
        page.set_input_files("#upload input[type=file]", str(gallery / "not_an_image.png"))
        page.wait_for_timeout(500)
        page.click("#search-image")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('cannot be searched')")
        assert "Traceback" not in page.content()

        page.click("#upload button[aria-label='Clear']")  # over the 0.1 MB limit: refused, with a message
        page.set_input_files("#upload input[type=file]", str(gallery / "large.png"))
        page.wait_for_function("() => document.body.innerText.includes('exceed the maximum allowed size')")
        page.click("#search-image")
        page.wait_for_function("() => document.querySelector('#status').innerText.includes('Upload a picture')")
        boundary = "ivt-test-boundary"  # and the server itself refuses it (not only the page's script)
        upload = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="large.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode() + (gallery / "large.png").read_bytes()
        upload += f"\r\n--{boundary}--\r\n".encode()
        status, body = _http_status(
            f"http://127.0.0.1:{port}/gradio_api/upload",
            upload,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert status == 413, (status, body[:200])

        hosts = {urlsplit(url).hostname for url in requests if not url.startswith(("data:", "blob:"))}
        assert hosts == {"127.0.0.1"}, sorted(url for url in requests if "127.0.0.1" not in url)[:5]
    finally:
        browser.close()
        playwright.stop()
        blocks.close()


def _shown(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(file name, caption) of gallery items: each page hands out its own copies of the files."""
    return [(Path(path).name, caption) for path, caption in items]


def test_the_upload_limit_has_one_default_and_one_check():
    """`max_upload_mb` (`serve`, `load_page`, `ivt app --max_upload_mb`): None is `MAX_UPLOAD_MB`; 0, a negative
    number, nan or inf is refused in one line by `upload_limit_bytes`, before anything loads (inf used to reach
    `int()` and overflow, with a traceback, after the model had loaded)."""
    from ivt_hf.app import MAX_UPLOAD_MB, load_page, upload_limit_bytes
    from ivt_hf.errors import IVTInputError

    assert upload_limit_bytes(None) == int(MAX_UPLOAD_MB * 2**20) and upload_limit_bytes(0.5) == 2**19
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(IVTInputError, match=f"^--max_upload_mb must be a finite number above 0, got {bad}$"):
            load_page("no-such-model", max_upload_mb=bad)


def test_page_logic_checks_every_input_and_refuses_another_models_index(gallery):
    from ivt_hf.app import SearchPage

    index = GalleryIndex.load(gallery / "index")
    model, processor = IVTModel.from_pretrained(gallery / "model"), IVTProcessor.from_pretrained(gallery / "model")
    page = SearchPage(index, model, processor)
    assert page.max_k == 12
    for k in (0, 13, 2.5, "x", None):
        items, message = page.search_text(QUERY, k)
        assert items == [] and "top-k must be a whole number from 1 to 12" in message
    items, message = page.search_text(QUERY, 3)
    assert len(items) == 3 and message.startswith("Top 3 of 12 images")
    assert page.search_image(None, 3) == ([], "Upload a picture of a person first.")
    from ivt_hf.search import FaissSettings

    for settings in (FaissSettings("flat"), FaissSettings("hnsw")):  # a small gallery: the same hits as exact search
        approximate = SearchPage(index, model, processor, faiss=settings)
        assert _shown(approximate.search_text(QUERY, 3)[0]) == _shown(items)
        crop = str(gallery / "gallery" / "person_05.png")
        assert _shown(approximate.search_image(crop, 3)[0]) == _shown(page.search_image(crop, 3)[0])
    items, message = page.search_image(str(gallery / "not_an_image.png"), 3)
    assert items == [] and message.startswith("That upload cannot be searched:") and "not_an_image.png" in message

    small_limit = SearchPage(index, model, processor, max_upload_bytes=100_000)  # checked before decoding
    items, message = small_limit.search_image(str(gallery / "large.png"), 3)
    assert items == [] and "large.png is 0.3 MB, over the 0.1 MB limit" in message
    assert _shown(small_limit.search_image(crop, 3)[0]) == _shown(page.search_image(crop, 3)[0])  # small: works
    _header_only_png(gallery.parent / "huge.png", 8000, 8000)  # 64 MP: 192 MB decoded from a 57-byte file
    items, message = page.search_image(str(gallery.parent / "huge.png"), 3)
    assert items == [] and "huge.png is 8000 x 8000 pixels, over the 40,000,000-pixel limit" in message
    _header_only_png(gallery.parent / "bomb.png", 40000, 40000)  # over PIL's own ceiling: its error, as a message
    items, message = page.search_image(str(gallery.parent / "bomb.png"), 3)
    assert items == [] and "bomb.png" in message and "decompression bomb" in message
    served = page.search_text(QUERY, 3)[0]  # results are copies outside the gallery's folder, with the same bytes
    for (path, _), hit in zip(served, index.search(QUERY, model, processor, k=3)[0]):
        assert not Path(path).is_relative_to(gallery) and Path(path).name == Path(hit.path).name
        assert Path(path).read_bytes() == index.resolve(hit.path).read_bytes()

    torch.manual_seed(1)
    other = IVTModel(model.config)
    with pytest.raises(ModelMismatchError, match="built by another model"):
        SearchPage(index, other, processor)


def test_the_page_can_index_a_folder_at_start_and_shows_the_models_facts(gallery, tmp_path):
    from ivt_hf.app import load_page
    from ivt_hf.evaluation.record import EvaluationRecord

    model_dir = tmp_path / "model"
    shutil.copytree(gallery / "model", model_dir)
    EvaluationRecord(
        benchmark="synthpedes",
        split="test",
        protocol="standard",
        metrics={"R1": 51.31, "R5": 88.3, "R10": 95.1, "mAP": 56.4, "mINP": 45.6},
    ).save(model_dir / "evaluation.json")
    page = load_page(str(model_dir), images=gallery / "gallery")  # no index yet: built now, the same as ivt's
    assert len(page.index) == 12 and "R@1:** 51.31 % on SynthPEDES" in page.model_facts
    built = GalleryIndex.load(gallery / "index")
    assert page.index.paths == built.paths
    torch.testing.assert_close(page.index.embeddings, built.embeddings, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="one of them"):
        load_page(str(model_dir), index=gallery / "index", images=gallery / "gallery")


def _crafted_index(gallery: Path, folder: Path, entry: str, root: Path | None = None) -> Path:
    """A copy of the fixture's index whose maker replaced its first entry (and, if given, its root)."""
    shutil.copytree(gallery / "index", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["paths"][0] = entry
    if root is not None:
        manifest["root"] = str(root)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_crafted_index_is_refused_before_the_page_serves_anything(gallery, tmp_path, monkeypatch):
    """An index whose manifest names an image outside its gallery (`../large.png`, a real file) is refused at load,
    with one line naming the folder and the entry, before the server listens: the outside file cannot be fetched."""
    from ivt_hf.app import serve

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    crafted = _crafted_index(gallery, tmp_path / "crafted", "../large.png")
    port = free_port()
    with pytest.raises(GalleryIndexError) as refused:
        serve(str(gallery / "model"), crafted, port=port, block=False)
    assert str(refused.value) == (
        f"refusing the index {crafted}: entry '../large.png' leads outside the gallery root "
        f"{(gallery / 'gallery').resolve()} (an index may only reach its own gallery)"
    )
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/file={gallery / 'large.png'}", timeout=5)
    assert not (tmp_path / "gradio").exists() or not any((tmp_path / "gradio").rglob("*.png"))


def test_the_space_export_refuses_a_crafted_index_and_writes_nothing_outside(gallery, tmp_path, capsys):
    """`--export_space` over an index whose entry climbs out (`../../../escape.png`, which the old export copied to
    beside the Space folder) or whose model folder links out: exit 2, one line, nothing written anywhere."""
    from ivt_hf.cli import main

    root = tmp_path / "a" / "b" / "gallery"
    shutil.copytree(gallery / "gallery", root)
    shutil.copyfile(gallery / "large.png", tmp_path / "escape.png")
    crafted = _crafted_index(gallery, tmp_path / "crafted", "../../../escape.png", root)
    space = tmp_path / "out" / "space"
    code = main(["app", "--model", str(gallery / "model"), "--index", str(crafted), "--export_space", str(space)])
    assert (code, capsys.readouterr().err.splitlines()) == (
        2,
        [
            f"error: refusing the index {crafted}: entry '../../../escape.png' leads outside the gallery root "
            f"{root} (an index may only reach its own gallery)"
        ],
    )
    assert not (tmp_path / "out").exists()  # neither the Space nor `out/escape.png`

    model = tmp_path / "model"
    shutil.copytree(gallery / "model", model)
    (model / "notes.json").symlink_to("/etc/passwd")  # the model folder is published with the Space
    code = main(["app", "--model", str(model), "--index", str(gallery / "index"), "--export_space", str(space)])
    assert (code, capsys.readouterr().err.splitlines()) == (
        2,
        [f"error: {model / 'notes.json'} in the model folder links outside it (/etc/passwd): not copied"],
    )
    assert not (tmp_path / "out").exists()


def test_a_link_changed_after_load_is_not_opened_by_the_page(gallery, tmp_path):
    """An entry that passed the load check but became a link to outside afterwards is refused when the page would
    copy it for the browser: a message, and no copy of the outside file in the page's folder."""
    from ivt_hf.app import SearchPage

    shutil.copytree(gallery / "gallery", tmp_path / "gallery")
    index = GalleryIndex.load(_crafted_index(gallery, tmp_path / "index", "person_00.png", tmp_path / "gallery"))
    model, processor = IVTModel.from_pretrained(gallery / "model"), IVTProcessor.from_pretrained(gallery / "model")
    page = SearchPage(index, model, processor)
    for image in (tmp_path / "gallery").glob("*.png"):  # every image now leads out
        image.unlink()
        image.symlink_to(gallery / "large.png")
    items, message = page.search_text(QUERY, 12)
    assert items == [] and message.startswith("The results cannot be shown: the index entry 'person_")
    assert message.endswith(f"leads outside the gallery root {tmp_path / 'gallery'}; not opened")
    outside = (gallery / "large.png").read_bytes()
    assert not [path for path in page.cache_dir.rglob("*") if path.is_file() and path.read_bytes() == outside]


def test_many_uploads_keep_the_pages_folder_bounded(gallery, tmp_path, monkeypatch):
    """200 example crops uploaded and searched through the real server (Gradio's own client, 20 waves of 10 at
    once, which all fit the bound), then 100 uploads posted and never searched: Gradio's upload folder never holds
    more than the page's bound (60 files, 0.3 MB) once a wave is done or a trim period has passed; the oldest
    uploads are gone."""
    from gradio_client import Client, handle_file

    from ivt_hf.app import CACHE_TRIM_SECONDS, serve

    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    rng = np.random.default_rng(1)
    crops = tmp_path / "crops"
    crops.mkdir()
    for number in range(300):  # about 11.6 kB each
        Image.fromarray(rng.integers(0, 255, (96, 40, 3), dtype=np.uint8)).save(crops / f"upload_{number:03d}.png")

    def on_disk() -> tuple[set[str], int, int]:
        files = [path for path in uploads.rglob("*") if path.is_file()]
        return {path.name for path in files}, len(files), sum(path.stat().st_size for path in files)

    port = free_port()
    blocks = serve(
        str(gallery / "model"), gallery / "index", port=port, block=False, cache_max_files=60, cache_max_mb=0.3
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, analytics_enabled=False)
        for wave in range(20):
            jobs = [
                client.submit(handle_file(str(crops / f"upload_{number:03d}.png")), 3, api_name="/search_image")
                for number in range(10 * wave, 10 * wave + 10)
            ]
            for job in jobs:
                items, message = job.result()
                assert len(items) == 3 and "nearest to the uploaded crop" in message, message
            names, count, size = on_disk()
            assert count <= 60 and size <= 0.3 * 2**20, (wave, count, size)
        assert not {f"upload_{number:03d}.png" for number in range(150)} & names  # finished searches: gone
        assert {f"upload_{number:03d}.png" for number in range(150, 200)} & names  # the latest: kept, bounded
        assert {f"person_{number:02d}.png" for number in range(12)} & names  # the result copies share the bound

        for number in range(200, 300):  # posted straight to the upload route, never searched
            boundary = "ivt-test-boundary"
            body = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="upload_{number:03d}.png"'
                f"\r\nContent-Type: image/png\r\n\r\n"
            ).encode() + (crops / f"upload_{number:03d}.png").read_bytes()
            body += f"\r\n--{boundary}--\r\n".encode()
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            assert _http_status(f"http://127.0.0.1:{port}/gradio_api/upload", body, headers)[0] == 200
        time.sleep(2.5 * CACHE_TRIM_SECONDS)
        names, count, size = on_disk()
        assert count <= 60 and size <= 0.3 * 2**20, (count, size)
        assert "upload_200.png" not in names and "upload_299.png" in names
    finally:
        blocks.close()


def test_a_port_in_use_is_one_error_line(gallery, capsys):
    """`ivt app --port N` while something listens on 127.0.0.1:N: exit 2 and one line naming the port, before the
    model is loaded."""
    import socket

    from ivt_hf.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["app", "--model", str(gallery / "model"), "--index", str(gallery / "index"), "--port", str(port)])
    assert (code, capsys.readouterr().err.splitlines()) == (
        2,
        [
            f"error: port {port} on 127.0.0.1 is already in use (another server listens there): choose another "
            "with --port"
        ],
    )


def _environment_with_dependencies_only(folder: Path) -> Path:
    """A new virtual environment (no pip: this one's drives it) that sees this environment's installed packages
    except ivt_hf, through a folder of links named in a .pth file; returns its python."""
    import sysconfig
    import venv

    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    links = folder / "dependencies"
    links.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(("ivt_hf", "__editable__")) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    (target / "dependencies.pth").write_text(f"{links}\n")
    return python


def test_export_space_runs_the_same_page_from_its_own_folder(gallery, tmp_path):
    from ivt_hf.cli import main

    space = tmp_path / "space"
    assert (
        main(
            ["app", "--model", str(gallery / "model"), "--index", str(gallery / "index"), "--export_space", str(space)]
        )
        == 0
    )
    assert sorted(path.name for path in space.iterdir() if not path.name.startswith(".")) == [
        "README.md",
        "app.py",
        "index",
        "model",
        "requirements.txt",
        "wheels",
    ]
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\ntitle: ") and '\nsdk: "gradio"\n' in readme and 'app_file: "app.py"' in readme
    (wheel,) = (space / "wheels").iterdir()  # the package itself, built from this tree: no published ivt_hf needed
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert requirements[0] == f"./wheels/{wheel.name}" and wheel.name.startswith("ivt_hf-")
    assert any(line.startswith("gradio") for line in requirements)
    assert not any("playwright" in line.lower() for line in requirements)  # only the tests drive a browser
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert "ivt_hf/app.py" in names and "ivt_hf/resources/bert-base-uncased-vocab.txt" in names
    assert not any(name.startswith("tests/") for name in names) and "Name: ivt_hf" in metadata
    assert "from ivt_hf.app import serve" in (space / "app.py").read_text()  # no second copy of the page
    assert len(list((space / "index" / "gallery").iterdir())) == 12

    # Install the Space's requirements, offline, into an empty environment that sees this one's third-party
    # packages (torch, gradio, ...: no index to fetch them from here) but not its ivt_hf: pip must install the wheel.
    python = _environment_with_dependencies_only(tmp_path / "space_env")
    install = subprocess.run(
        [
            sys.executable,
            *f"-m pip --python {python} install --no-index --find-links wheels -r requirements.txt".split(),
        ],
        cwd=space,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    assert "Successfully installed ivt-hf-" in install.stdout, install.stdout[-2000:]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    where = subprocess.run(
        [str(python), "-c", "import ivt_hf; print(ivt_hf.__file__)"],
        cwd=space,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(tmp_path / "space_env"), where

    shutil.move(str(gallery / "index"), str(tmp_path / "moved_index"))  # the Space must not need the original files
    try:
        port = free_port()
        env.update(PORT=str(port), GRADIO_TEMP_DIR=str(tmp_path / "gradio"), HF_HUB_OFFLINE="1")
        process = subprocess.Popen(
            [str(python), "app.py"], cwd=space, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline, html = time.monotonic() + 120, ""
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                    break
                except OSError:
                    time.sleep(0.5)
            assert "IVT person search" in html, process.stdout.read() if process.poll() is not None else html[:500]
            playwright, browser = _browser()
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
                page.fill("#query textarea", QUERY)
                page.click("#search")
                assert len(_wait_for_images(page, 10)) >= 10
            finally:
                browser.close()
                playwright.stop()
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        shutil.move(str(tmp_path / "moved_index"), str(gallery / "index"))


FACTS_SCRIPT = r"""
from ivt_hf.app import describe_model
print(describe_model("people-org/ivt-demo", None))
print("---")
print(describe_model("people-org/no-such-model", None))
"""


def test_the_facts_corner_reads_a_hub_models_fact_files(gallery, tmp_path):
    """A page (or Space) serving a Hub model shows the facts `ivt push` uploaded beside the weights."""
    from helpers.hub_access import TOKEN
    from helpers.hub_access import load_local_hub as _load_local_hub

    files = {path.name: path.read_bytes() for path in (gallery / "model").iterdir() if path.is_file()}
    files["card_facts.json"] = json.dumps({"title": "IVT tiny, a test model", "provenance": "made by a test"}).encode()
    files["evaluation.json"] = json.dumps(
        {
            "benchmark": "rstpreid",
            "split": "test",
            "protocol": "standard",
            "metrics": {"R1": 12.5, "R5": 30.0, "R10": 40.0, "mAP": 10.0, "mINP": 5.0},
        }
    ).encode()
    with _load_local_hub().LocalHub(token=TOKEN) as hub:
        hub.seed_repo("people-org/ivt-demo", files)
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        result = subprocess.run(
            [sys.executable, "-c", FACTS_SCRIPT], capture_output=True, text=True, env=env, timeout=300
        )
        assert hub.unhandled == []
    assert result.returncode == 0, result.stderr[-3000:]
    found, missing = result.stdout.split("---\n")
    assert found.splitlines()[:3] == [
        "**IVT tiny, a test model**  ",
        "**Model:** `people-org/ivt-demo`  ",
        "**R@1:** 12.50 % on RSTPReid test (standard protocol)",
    ]
    assert missing.strip() == "**Model:** `people-org/no-such-model`"  # no facts to show: the page still works
