"""`ivt app` in a real headless browser (Debian's chromium driven by Playwright): type a description, wait for k
decoded images, check the top result against the index, search by an example crop, bad input as messages on the
page, and no request leaving 127.0.0.1. Then the Space export runs the same page from its own folder.

Needs the app extra (`pip install -e ".[app]"`) and chromium (`.ci/run` installs it with apt-get when missing). CI
sets `IVT_REQUIRE_BROWSER=1`, so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from helpers.launchers import free_port
from PIL import Image

from ivt_hf import IVTConfig, IVTModel, IVTProcessor
from ivt_hf.hub import save_model_folder
from ivt_hf.search import GalleryIndex, ModelMismatchError, build_index

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
    config = IVTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=64, image_size=(64, 32))  # fmt: skip
    save_model_folder(IVTModel(config), IVTProcessor.from_config(config), root / "model")
    model, processor = IVTModel.from_pretrained(root / "model"), IVTProcessor.from_pretrained(root / "model")
    build_index(model, processor, root / "gallery", root / "index", progress=False)
    (root / "not_an_image.png").write_text("this is text")
    return root


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
    blocks = serve(str(gallery / "model"), gallery / "index", port=port, block=False)
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
        fits = page.evaluate("() => [...document.querySelectorAll('#results img')]"
                             ".map(img => getComputedStyle(img).objectFit)")  # fmt: skip
        assert set(fits) == {"contain"}  # tall crops shown whole, not cropped
        assert "Top 10 of 12 images" in page.inner_text("#status")
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

        hosts = {urlsplit(url).hostname for url in requests if not url.startswith(("data:", "blob:"))}
        assert hosts == {"127.0.0.1"}, sorted(url for url in requests if "127.0.0.1" not in url)[:5]
    finally:
        browser.close()
        playwright.stop()
        blocks.close()


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
        assert approximate.search_text(QUERY, 3)[0] == items
        crop = str(gallery / "gallery" / "person_05.png")
        assert approximate.search_image(crop, 3)[0] == page.search_image(crop, 3)[0]
    items, message = page.search_image(str(gallery / "not_an_image.png"), 3)
    assert items == [] and message.startswith("That upload cannot be searched:") and "not_an_image.png" in message

    torch.manual_seed(1)
    other = IVTModel(model.config)
    with pytest.raises(ModelMismatchError, match="built by another model"):
        SearchPage(index, other, processor)


def test_the_page_can_index_a_folder_at_start_and_shows_the_models_facts(gallery, tmp_path):
    from ivt_hf.app import load_page
    from ivt_hf.evaluation.record import EvaluationRecord

    model_dir = tmp_path / "model"
    shutil.copytree(gallery / "model", model_dir)
    EvaluationRecord(benchmark="synthpedes", split="test", protocol="standard",
                     metrics={"R1": 51.31, "R5": 88.3, "R10": 95.1, "mAP": 56.4, "mINP": 45.6}).save(
        model_dir / "evaluation.json")  # fmt: skip
    page = load_page(str(model_dir), images=gallery / "gallery")  # no index yet: built now, the same as ivt's
    assert len(page.index) == 12 and "R@1:** 51.31 % on SynthPEDES" in page.model_facts
    built = GalleryIndex.load(gallery / "index")
    assert page.index.paths == built.paths
    torch.testing.assert_close(page.index.embeddings, built.embeddings, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="one of them"):
        load_page(str(model_dir), index=gallery / "index", images=gallery / "gallery")


def test_export_space_runs_the_same_page_from_its_own_folder(gallery, tmp_path):
    from ivt_hf.cli import main

    space = tmp_path / "space"
    assert main(["app", "--model", str(gallery / "model"), "--index", str(gallery / "index"), "--export_space",
                 str(space)]) == 0  # fmt: skip
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "index", "model",
                                                             "requirements.txt"]  # fmt: skip
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\ntitle: ") and "\nsdk: \"gradio\"\n" in readme and "app_file: \"app.py\"" in readme
    assert (space / "requirements.txt").read_text().startswith("ivt_hf[app]==")
    assert "from ivt_hf.app import serve" in (space / "app.py").read_text()  # no second copy of the page
    assert len(list((space / "index" / "gallery").iterdir())) == 12

    shutil.move(str(gallery / "index"), str(tmp_path / "moved_index"))  # the Space must not need the original files
    try:
        port = free_port()
        env = {**os.environ, "PORT": str(port), "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)  # fmt: skip
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
    import json

    from test_backbones import TOKEN, _load_local_hub

    files = {path.name: path.read_bytes() for path in (gallery / "model").iterdir() if path.is_file()}
    files["card_facts.json"] = json.dumps({"title": "IVT tiny, a test model", "provenance": "made by a test"}).encode()
    files["evaluation.json"] = json.dumps({"benchmark": "rstpreid", "split": "test", "protocol": "standard",
                                           "metrics": {"R1": 12.5, "R5": 30.0, "R10": 40.0, "mAP": 10.0,
                                                       "mINP": 5.0}}).encode()  # fmt: skip
    with _load_local_hub().LocalHub(token=TOKEN) as hub:
        hub.seed_repo("people-org/ivt-demo", files)
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
        result = subprocess.run([sys.executable, "-c", FACTS_SCRIPT], capture_output=True, text=True, env=env,
                                timeout=300)  # fmt: skip
        assert hub.unhandled == []
    assert result.returncode == 0, result.stderr[-3000:]
    found, missing = result.stdout.split("---\n")
    assert found.splitlines()[:3] == ["**IVT tiny, a test model**  ", "**Model:** `people-org/ivt-demo`  ",
                                      "**R@1:** 12.50 % on RSTPReid test (standard protocol)"]  # fmt: skip
    assert missing.strip() == "**Model:** `people-org/no-such-model`"  # no facts to show: the page still works
