"""`--store milvus:URI` of `ivt index build`, `ivt search`, `ivt index add` and `ivt index remove`: a gallery whose
vectors are kept and searched in Milvus (`ivt_hf.search.milvus_store`).

ivt index build --model MODEL --images DIR --output_dir INDEX --store milvus:            (Milvus Lite, in INDEX)
ivt index build ... --store milvus:http://HOST:19530?collection=people                  (a Milvus server)
ivt search --index INDEX "a man in red" [--store milvus:http://HOST:19530]   (a server must be named to be used)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandError

STORE_HELP = (
    "keep and search the vectors in Milvus (pip install 'ivt_hf[milvus]'): milvus: or milvus:NAME.db (Milvus Lite, "
    "a file in the index folder), milvus:http(s)://HOST:PORT (a server; token from MILVUS_TOKEN); ?collection=NAME"
)


def add_store_argument(parser: argparse.ArgumentParser, help: str = STORE_HELP) -> None:
    parser.add_argument("--store", metavar="milvus:URI", help=help)


def named_store(args: argparse.Namespace, index_dir):
    """The user's `--store` (a `StoreSpec`), None when not given; pymilvus must be there for it."""
    if not getattr(args, "store", None):
        return None
    from ..search.milvus_store import import_pymilvus, parse_store

    spec = parse_store(args.store, index_dir)
    import_pymilvus()  # before a model is loaded
    return spec


def build_store(args: argparse.Namespace):
    """`ivt index build`'s `--store` (`named_store`), its collection name settled; on a server, a collection there
    that the build may not replace is refused now, before anything is encoded."""
    from dataclasses import replace

    from ..search.milvus_store import MilvusStore, default_collection

    spec = named_store(args, args.output_dir)
    if spec is None:
        return None
    spec = replace(spec, collection=spec.collection or default_collection(args.output_dir))
    if spec.server is not None:
        with MilvusStore(spec, Path(args.output_dir)) as store:
            store.may_create(overwrite=args.overwrite)
    return spec


def check_time_range(args: argparse.Namespace) -> None:
    """`--after` no later than `--before` (the filters of both searches: in memory, and in Milvus)."""
    if args.after is not None and args.before is not None and args.after > args.before:
        raise CommandError(f"--after {args.after} is later than --before {args.before}")


def searched_index(args: argparse.Namespace):
    """`(index, store)`: an index that keeps its vectors in Milvus, read from its manifest alone, and its
    `StoreSpec`; or the whole index (`GalleryIndex.load`) and None."""
    from ..search.milvus_store import load_searched_index

    index, store = load_searched_index(args.index, named_store(args, args.index))
    if store is not None and args.faiss:
        raise CommandError(f"{args.index} is searched in Milvus (its store); --faiss searches vectors held in memory")
    return index, store


def store_search(index, spec, args: argparse.Namespace, model, processor):
    """`GalleryIndex.search` in Milvus: the filters (`--where`, `--after`, `--before`) as a Milvus expression."""
    from ..evaluation.encoding import encode_texts
    from ..search.milvus_store import MilvusStore, filter_expression

    check_time_range(args)
    expression = filter_expression(
        sources=[value for key, value in args.where if key == "source"],
        cameras=[value for key, value in args.where if key == "camera"],
        after=args.after,
        before=args.before,
    )
    index.check_model(model)
    with MilvusStore(spec, Path(args.index)) as store:
        store.check(index)
        queries = encode_texts(model, processor, list(args.queries), progress=False)
        results = store.search(index, queries, args.k, expression)
    if expression and not any(results):
        raise CommandError("no entry of the index passes the filters (--where, --after, --before)")
    return results
