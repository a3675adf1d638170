"""The search page over an index of footage, in a real headless browser (Debian's chromium driven by Playwright):
a click on a result shows the whole frame with the person's box drawn, where and when it was seen, and the video,
ready to play from that moment.

Needs the app and video extras and chromium, like tests/test_app.py (`IVT_REQUIRE_BROWSER=1` in CI: no skipping).
"""

from __future__ import annotations

import io
import os
import shutil
import time
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest
from helpers.commands import save_tiny_model_folder
from helpers.footage import FPS, ColourDetector, write_synthetic_video
from helpers.launchers import free_port
from PIL import Image

pytestmark = pytest.mark.compat  # third-party APIs most likely to move: docs/compatibility.md

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if os.environ.get("IVT_REQUIRE_BROWSER") != "1":
    pytest.importorskip("gradio")
    pytest.importorskip("playwright")
    pytest.importorskip("av")
    if CHROMIUM is None:
        pytest.skip("no chromium (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def footage_index(tmp_path_factory):
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.search.footage_index import build_footage_index

    root = tmp_path_factory.mktemp("app_footage")
    save_tiny_model_folder(root / "model")
    write_synthetic_video(root / "street.avi")
    model, processor = load_model_and_processor(str(root / "model"))
    build_footage_index(
        model, processor, root / "index", detector=ColourDetector(), videos=[root / "street.avi"], progress=False
    )
    return root


def _wait(page, script: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"the page never satisfied: {script}")


def test_a_hit_shows_its_frame_with_the_box_its_time_and_plays_from_that_moment(footage_index, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from ivt_hf.app import serve
    from ivt_hf.footage.drawing import BOX_COLOUR
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.search import GalleryIndex

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    port = free_port()
    blocks = serve(str(footage_index / "model"), footage_index / "index", port=port, block=False)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        # the page keeps a heartbeat open for its per-session state (the results shown), so it is never network-idle
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
        page.wait_for_selector("#query textarea", timeout=60_000)
        page.fill("#query textarea", "a person in a red coat")
        page.click("#search")
        _wait(page, "() => [...document.querySelectorAll('#results img')].filter(i => i.naturalWidth > 0).length >= 6")

        index = GalleryIndex.load(footage_index / "index")
        model, processor = load_model_and_processor(str(footage_index / "model"))
        hits = index.search("a person in a red coat", model, processor, k=6)[0]
        captions = page.evaluate(
            "() => [...document.querySelectorAll('#results [class*=caption]')].map(c => c.textContent.trim())"
        )
        assert captions[:6] == [f"{hit.rank}. {hit.score:.2f} street.avi {hit.footage['time_s']:.1f} s" for hit in hits]
        number = next(number for number, hit in enumerate(hits) if hit.footage["time_s"] > 0)  # a moment after 0 s
        record = hits[number].footage
        page.locator("#results img").nth(number).click()
        source = _wait(
            page,
            "() => { const i = document.querySelector('#hit-frame img');"
            " return i && i.complete && i.naturalWidth > 0 ? i.src : null }",
        )
        info = page.inner_text("#hit-info")
        x0, y0, x1, y1 = record["box"]
        assert f"{record['time_s']:.2f} s" in info and f"frame {record['frame']}, track {record['track']}" in info
        assert f"box ({x0}, {y0}) to ({x1}, {y1})" in info

        with urllib.request.urlopen(source, timeout=30) as reply:  # the frame as the page shows it
            shown = np.asarray(Image.open(io.BytesIO(reply.read())).convert("RGB")).astype(int)
        whole = np.asarray(Image.open(index.resolve(record["frame_file"])).convert("RGB")).astype(int)
        assert shown.shape == whole.shape  # the whole frame, not the crop
        middle = (y0 + y1) // 2
        for x in (x0 - 1, x1):  # just outside the box, left and right: the red line
            assert np.abs(shown[middle, x] - np.array(BOX_COLOUR)).max() < 60, (x, shown[middle, x])
        inside = shown[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]  # the person is not painted over
        assert np.abs(inside - whole[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2]).mean() < 4

        state = _wait(
            page,
            "() => { const v = document.querySelector('#hit-video video');"
            " return v && v.readyState >= 1 ? [v.currentTime, v.duration, v.videoWidth, v.src] : null }",
        )
        current, duration, width, video_source = state
        assert current == pytest.approx(record["time_s"], abs=0.06) and record["time_s"] > 0
        assert duration == pytest.approx(40 / FPS, abs=0.15) and width == 320
        page.evaluate("() => document.querySelector('#hit-video video').play()")  # and it plays on from there
        later = _wait(
            page,
            f"() => {{ const v = document.querySelector('#hit-video video');"
            f" return v.currentTime > {record['time_s'] + 0.3} ? v.currentTime : null }}",
            timeout=20,
        )
        assert later > record["time_s"]
        with urllib.request.urlopen(video_source.split("#")[0], timeout=30) as reply:
            assert reply.headers["Content-Type"] in ("video/mp4", "video/webm")

        page.fill("#query textarea", "a person in a blue coat")  # a new search clears the panel
        page.click("#search")
        _wait(page, "() => !document.querySelector('#hit-video video')")
        hosts = {urlsplit(url).hostname for url in requests if not url.startswith(("data:", "blob:"))}
        assert hosts == {"127.0.0.1"}
    finally:
        browser.close()
        playwright.stop()
        blocks.close()


def test_the_page_logic_gives_nothing_to_show_for_a_plain_image_and_a_message_for_a_moved_frame(footage_index):
    from ivt_hf.app import SearchPage
    from ivt_hf.hub.folder import load_model_and_processor
    from ivt_hf.search import GalleryIndex

    index = GalleryIndex.load(footage_index / "index")
    model, processor = load_model_and_processor(str(footage_index / "model"))
    page = SearchPage(index, model, processor)
    items, _ = page.search_text("a person", 2)
    paths = page.hit_paths(items)
    assert set(paths) <= set(index.paths) and len(paths) == 2
    frame, info, player = page.footage_view(paths[0])
    assert frame is not None and "track" in info and '<video id="hit-player"' in player
    assert page.footage_view(None) == (None, "", "") and page.footage_view("not/in/the/index.jpg") == (None, "", "")
    index.footage[index.paths.index(paths[1])] = None  # an entry indexed as a plain image
    assert page.footage_view(paths[1]) == (None, "", "")
