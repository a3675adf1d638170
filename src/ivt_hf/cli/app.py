"""`ivt app`: the browser search page (Gradio; `pip install -e ".[app]"`), or its Hugging Face Space folder.

ivt app --model MODEL --index INDEX [--host 127.0.0.1] [--port 7860]
ivt app --model MODEL --images DIR                 (the index is built at start)
ivt app --model MODEL --index INDEX --export_space DIR
"""

from __future__ import annotations

import argparse
import importlib.util

from . import CommandError, flag
from .export import add_runtime_argument
from .parsers import positive_int


def run_app(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise CommandError('ivt app needs Gradio, in the app extra: pip install -e ".[app]"')
    from ..app import check_port, serve, upload_limit_bytes
    from ..hub.space import export_space

    if not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be from 1 to 65535, got {args.port}")
    if args.export_space:
        if args.index is None:
            raise CommandError("--export_space needs --index (a folder written by `ivt index build`)")
        if args.runtime == "onnx":  # the export folder, checked before anything is written
            from ..onnx.runtime import read_manifest

            read_manifest(args.model)
        folder = export_space(
            args.export_space,
            args.model,
            args.index,
            title=args.title,
            package=args.package,
            overwrite=args.overwrite,
            runtime=args.runtime,
        )
        print(
            f"wrote a Space to {folder}: upload it to a Space repo (sdk gradio), e.g. "
            f"`hf upload YOUR-NAME/SPACE {folder} --repo-type space`"
        )
        return 0
    from ..search.faiss_cache import FaissSettings

    faiss = None
    if args.faiss is not None:
        faiss = FaissSettings(args.faiss, nprobe=args.nprobe, ef_search=args.ef_search, pq_bytes=args.pq_bytes)
    upload_limit_bytes(args.max_upload_mb)  # a bad limit: one error line before anything starts (serve checks again)
    check_port(args.host, args.port)  # a port in use: one error line before the model loads (serve checks again)
    print(f"IVT search page on http://{args.host}:{args.port} (Ctrl+C stops it)")
    serve(
        args.model,
        args.index,
        args.images,
        host=args.host,
        port=args.port,
        share=args.share,
        examples=tuple(args.examples) if args.examples else None,
        title=args.title,
        faiss=faiss,
        max_upload_mb=args.max_upload_mb,
        runtime=args.runtime,
    )
    return 0


def register(subparsers) -> None:
    app = subparsers.add_parser(
        "app",
        help="search a gallery in the browser, or export it as a Space",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app.add_argument("--model", required=True, help="a from_pretrained folder or a Hub repo id")
    gallery = app.add_mutually_exclusive_group(required=True)
    gallery.add_argument("--index", help="a folder written by `ivt index build`")
    gallery.add_argument("--images", help="a folder of images, indexed at start")
    app.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    app.add_argument("--port", type=int, default=7860)
    app.add_argument("--share", action="store_true", help="ask Gradio for a public link (off by default)")
    app.add_argument("--examples", nargs="+", help="example descriptions shown under the box")
    app.add_argument("--title", default="IVT person search")
    app.add_argument(
        "--faiss",
        choices=["flat", "ivf", "hnsw", "ivfpq"],
        help="search a FAISS index (opened at start: built once, then read from the index's faiss/ "
        "folder); ivf / hnsw: approximate, for large galleries; ivfpq: compressed, for galleries larger than memory",
    )
    app.add_argument("--nprobe", type=positive_int, default=32, help="ivf, ivfpq: centroids scanned per query")
    app.add_argument(
        *flag("--pq_bytes"), dest="pq_bytes", type=positive_int, help="ivfpq: bytes per vector, a divisor of the dim"
    )
    app.add_argument(
        *flag("--max_upload_mb"),
        dest="max_upload_mb",
        type=float,
        help="largest example-crop upload the page accepts, in MB (default: ivt_hf.app.MAX_UPLOAD_MB)",
    )
    app.add_argument(*flag("--ef_search"), dest="ef_search", type=positive_int, default=128, help="hnsw: candidates")
    app.add_argument(*flag("--export_space"), dest="export_space", help="write a Space folder here instead of serving")
    app.add_argument(
        "--package",
        help="the Space's requirement for this package (default: a wheel built from this "
        "source tree, shipped in the Space's wheels/ folder; with --runtime onnx the Space ships ivt_hf's source "
        "and installs no torch)",
    )
    app.add_argument("--overwrite", action="store_true", help="replace a non-empty --export_space folder")
    add_runtime_argument(app)
    app.set_defaults(handler=run_app)
