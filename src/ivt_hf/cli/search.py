"""`ivt index build` and `ivt search`: a gallery index of your own images, searched by description.

ivt index build --model MODEL --images DIR --output_dir INDEX
torchrun --nproc_per_node 4 -m ivt_hf index build ...     (or: accelerate launch -m ivt_hf index build ...)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import DTYPE_CHOICES, CommandError, flag
from .export import add_runtime_argument
from .footage import add_footage_arguments, describe_footage, is_footage_build, run_footage_build
from .growing import add_search_filters, register_index_changes, selected_rows
from .parsers import picture_path, positive_int
from .store import add_store_argument, build_store, searched_index, store_search


def run_index_build(args: argparse.Namespace) -> int:
    from ..search.building import build_index
    from .export import load_for_runtime

    footage = is_footage_build(args)  # before the model is loaded: one line for --images with --video
    store = build_store(args)  # Milvus (`ivt_hf.search.milvus_store`), checked before the model loads
    model, processor = load_for_runtime(args.model, args.runtime)
    if args.runtime == "onnx":  # an export's precision is fixed: refuse another --dtype before anything is written
        from ..evaluation.encoding import prepare_for_inference

        prepare_for_inference(model, args.dtype)
    model_name = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model  # folder or repo id
    if footage:
        return run_footage_build(args, model, processor, model_name, store=store)
    report = build_index(
        model,
        processor,
        args.images,
        args.output_dir,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        on_invalid=args.on_invalid,
        model_name_or_path=model_name,
        overwrite=args.overwrite,
        dtype=args.dtype,
        store=store,
    )
    if report.process_index == 0:
        print(report.summary())
        for skipped in report.skipped:  # the error names the file
            print(f"skipped: {skipped['error']}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from ..evaluation.pictures import RetrievalRow, draw_retrieval
    from ..search.faiss_cache import FaissSettings
    from ..search.growing import search_selected
    from .export import load_for_runtime

    index, store = searched_index(args)  # store: the Milvus store that holds the vectors (then not loaded here)
    selected = selected_rows(index, args) if store is None else None  # --where, --after, --before (None: all)
    count = len(index) if selected is None else len(selected)
    if args.faiss == "ivfpq":  # --pq_bytes that does not divide the dimension: one line before the model loads
        FaissSettings("ivfpq", pq_bytes=args.pq_bytes).pq_sub_quantizers(int(index.embeddings.shape[1]))
    if args.faiss in ("ivf", "ivfpq") and args.nlist is not None and args.nlist > count:
        passing = "" if selected is None else " that pass the filters"
        raise CommandError(f"--nlist {args.nlist} is more centroids than the gallery has images{passing} ({count})")
    model_dir = args.model or index.manifest.get("model")
    if not model_dir:
        raise CommandError("the index does not name its model; pass --model")
    model, processor = load_for_runtime(model_dir, args.runtime)
    faiss = None
    if args.faiss:
        faiss = FaissSettings(
            args.faiss,
            nlist=args.nlist,
            nprobe=args.nprobe,
            hnsw_m=args.hnsw_m,
            ef_search=args.ef_search,
            pq_bytes=args.pq_bytes,
        )
    if store is not None:
        results = store_search(index, store, args, model, processor)
    elif selected is None:
        results = index.search(args.queries, model, processor, k=args.k, faiss=faiss)
    else:
        results = search_selected(index, selected, args.queries, model, processor, k=args.k, faiss=faiss)
    rows = []
    for query, hits in zip(args.queries, results):
        print(f"\n{query}")
        for hit in hits:
            where = describe_footage(hit.footage)  # source, time, frame, track, box of a crop of footage
            print(f"  {hit.rank:>2}. {hit.score:.3f}  {hit.path}" + (f"  ({where})" if where else ""))
        rows.append(RetrievalRow(query, [index.resolve(hit.path) for hit in hits], None, [h.score for h in hits]))
    if args.show:
        draw_retrieval(rows, args.show, title=f"search over {len(index)} images")
        print(f"\nwrote {args.show}")
    return 0


def register(subparsers) -> None:
    index = subparsers.add_parser("index", help="gallery indexes of your own images")
    index_commands = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")
    build = index_commands.add_parser("build", help="encode a folder of images into an index")
    build.add_argument("--model", required=True, help="a from_pretrained folder or a Hub repo id")
    build.add_argument("--images", help="folder of images (searched recursively); or --video / --frames")
    build.add_argument(*flag("--output_dir"), "--output", dest="output_dir", required=True, help="index folder")
    build.add_argument(*flag("--batch_size"), type=positive_int, default=64)
    build.add_argument(
        *flag("--chunk_size"),
        type=positive_int,
        default=1024,
        help="images per chunk: written when done, shared among processes, resumed",
    )
    build.add_argument(*flag("--on_invalid"), choices=["error", "skip"], default="error")
    build.add_argument(
        "--overwrite", action="store_true", help="replace an index (or an unfinished build) that ivt_hf wrote there"
    )
    build.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="float32",
        help="encoding precision: bfloat16, float16 (GPU), int8 (CPU)",
    )
    add_runtime_argument(build)
    add_footage_arguments(build)
    add_store_argument(build)
    build.set_defaults(handler=run_index_build)
    register_index_changes(index_commands, add_runtime_argument)  # ivt index add / remove

    search = subparsers.add_parser("search", help="find the images that best match a description")
    search.add_argument("--index", required=True, help="a folder written by `ivt index build`")
    search.add_argument("queries", nargs="+", help="one or more descriptions")
    search.add_argument("-k", type=positive_int, default=10, help="how many images to show per description")
    search.add_argument("--model", help="default: the model the index was built with")
    search.add_argument(
        "--faiss",
        nargs="?",
        const="flat",
        choices=["flat", "ivf", "hnsw", "ivfpq"],
        help="search a FAISS index (pip install 'ivt_hf[faiss]'): flat (exact, the default), or "
        "approximate ivf / hnsw for large galleries, ivfpq (compressed, built from the embeddings file a chunk "
        "at a time) for galleries larger than memory. Built once, kept in the index's faiss/ folder "
        "and reused until the gallery or the build settings change (--nprobe, --ef_search: no "
        "rebuild)",
    )
    search.add_argument(
        "--nlist", type=positive_int, help="ivf: centroids, at most the gallery size (default about 4 x sqrt of it)"
    )
    search.add_argument("--nprobe", type=positive_int, default=32, help="ivf, ivfpq: centroids scanned per query")
    search.add_argument(
        *flag("--pq_bytes"),
        dest="pq_bytes",
        type=positive_int,
        help="ivfpq: bytes per vector, a divisor of the dimension (default: 64 for 768-d)",
    )
    search.add_argument(*flag("--hnsw_m"), dest="hnsw_m", type=positive_int, default=32, help="hnsw: links per vector")
    search.add_argument(*flag("--ef_search"), dest="ef_search", type=positive_int, default=128, help="hnsw: candidates")
    search.add_argument("--show", type=picture_path, help="write a picture of the results (PNG)")
    add_search_filters(search)
    add_store_argument(search)
    add_runtime_argument(search)
    search.set_defaults(handler=run_search)
