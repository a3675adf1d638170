"""What the search page gives for a few descriptions and an example crop: `page_results(page, ...)` in the test's
own process (the PyTorch page), and the same as a script run inside an exported Space folder, as the Space runs it:
the folder first on `sys.path` (its `ivt_hf/` source, as `python app.py` finds it), the model and index the folder
holds, `--block_torch` making torch and ivt_hf's other training-side dependencies unimportable (as where they are not
installed: `importlib.util.find_spec` says None). Prints one JSON object.

    python tests/helpers/space_search.py QUERIES_JSON CROP CACHE_DIR [--block_torch]   (in the Space folder)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# not in a Space for onnxruntime: what `--block_torch` makes unimportable
NOT_IN_THE_ONNX_SPACE = ("torch", "torchvision", "datasets", "accelerate", "evaluate", "optimum", "onnx", "faiss")


def page_results(page, queries: list[str], crop: str) -> dict:
    """Per description and for the crop: the page's shown items (caption; the file it hands out holds the indexed
    image's bytes) and the index's top-10 (path, score), through the page's own model and index."""
    from ivt_hf.evaluation.encoding import encode_images
    from ivt_hf.model.image_processing_ivt import to_rgb_uint8

    def shown(items) -> list[str]:
        hits = page.hit_paths(items)
        assert all(
            Path(file).read_bytes() == page.index.resolve(hit).read_bytes() for (file, _), hit in zip(items, hits)
        )
        return [caption for _, caption in items]

    found = {}
    for query in queries:
        items, message = page.search_text(query, 10)
        hits = page.index.search([query], page.model, page.processor, k=10)[0]
        found[query] = {"message": message, "shown": shown(items), "hits": [[hit.path, hit.score] for hit in hits]}
    items, message = page.search_image(crop, 10)
    embedding = encode_images(page.model, page.processor, [to_rgb_uint8(crop)], progress=False)
    hits = page.index.search_embeddings(embedding, k=10)[0]
    found["crop"] = {"message": message, "shown": shown(items), "hits": [[hit.path, hit.score] for hit in hits]}
    return found


def main(argv: list[str]) -> None:
    if "--block_torch" in argv:
        for name in NOT_IN_THE_ONNX_SPACE:
            sys.modules[name] = None
    sys.path.insert(0, os.getcwd())
    import importlib.util

    import ivt_hf
    from ivt_hf.app import build_page, load_page

    queries, crop, cache = json.loads(argv[0]), argv[1], argv[2]
    page = load_page("model", "index", cache_root=cache, runtime="onnx")
    build_page(page, "a Space for onnxruntime")  # the page's layout too (Gradio), not launched
    report = {
        "ivt_hf": ivt_hf.__file__,
        "torch_findable": importlib.util.find_spec("torch") is not None,
        "torch_modules": sorted(
            name for name, module in sys.modules.items() if name.split(".")[0] == "torch" and module
        ),
        "embeddings": type(page.index.embeddings).__module__,
        "results": page_results(page, queries, crop),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
