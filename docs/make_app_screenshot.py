"""The README's picture of `ivt app`: serve the page over an index, search once in headless chromium, screenshot.

    .venv/bin/python docs/make_app_screenshot.py --model outputs/demo/model --index outputs/index \
        --query "a woman in a red coat with a black backpack" --output docs/app_screenshot.png

Needs the app extra and Debian's chromium (see tests/test_app.py, which checks the same page).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--output", default="docs/app_screenshot.png")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from ivt_hf.app import serve

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    blocks = serve(args.model, args.index, port=port, block=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        page.fill("#query textarea", args.query)
        page.click("#search")
        for _ in range(150):
            loaded = page.evaluate(
                "() => [...document.querySelectorAll('#results img')]"
                ".filter(img => img.complete && img.naturalWidth > 0).length"
            )
            if loaded >= 10:
                break
            time.sleep(0.2)
        page.wait_for_timeout(500)
        page.screenshot(path=args.output)
        browser.close()
    blocks.close()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
