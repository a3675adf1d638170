"""The one data vocabulary of `ivt train`, `ivt pretrain`, `ivt evaluate` and `ivt data prepare`: `DataArguments`.

Its fields are spelled as transformers' examples spell them (`run_clip.py`: `--dataset_name`, `--dataset_config_name`,
`--data_dir`, `--image_column`, `--caption_column`). `ivt train` / `ivt pretrain` read them with `HfArgumentParser`,
the other commands with argparse (`add_data_arguments`); either way the fields, their help and their checks are
these. The spellings they had before (`RENAMED`: `--benchmark`, `--root`, `--data_root`, `--train_data`,
`--dataset_config`, and `on_invalid="raise"`) still work, and say in one line what they are now (`renamed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import IVTInputError
from .sources import DESCRIPTIONS, recognise_source
from .specs import BENCHMARK_NAMES, SYNTHPEDES, OnInvalid

logger = logging.getLogger(__name__)

ON_INVALID = ("error", "skip")
# old spelling -> the vocabulary's; each old one still works, with one line naming the new one
RENAMED = {
    "benchmark": "dataset_name",
    "train_data": "dataset_name",
    "root": "data_dir",
    "data_root": "data_dir",
    "dataset_config": "dataset_config_name",
}
SYNTH_FIELDS = ("synth_train_ids", "synth_validation_ids", "synth_test_ids", "synth_seed")
PAIR_FIELDS = ("dataset_name", "revision", "image_column", "caption_column", "on_invalid")  # what pairs take


def renamed(old: str, new: str) -> None:
    """Say, in one line, that `old` (a flag, a recipe setting, a value) is now spelled `new`; the old spelling
    works."""
    logger.warning("%s is now %s (the old spelling still works, for now)", old, new)


def check_on_invalid(value: str) -> OnInvalid:
    """What to do with a broken record, pair or image: `error` (stop, naming it) or `skip` (leave it out, and say
    so), the same two words everywhere; `raise`, pre-training's old word for `error`, is taken as `error`."""
    if value == "raise":
        renamed("on_invalid 'raise'", "'error'")
        return "error"
    if value not in ON_INVALID:
        raise IVTInputError(f"on_invalid must be 'error' or 'skip', got {value!r}")
    return value


def at_least(flag: str, value: int | float | None, minimum: int | float) -> None:
    """Raise `IVTInputError` unless `value` (None: not set) is a finite number >= `minimum`."""
    if value is not None and not (math.isfinite(value) and value >= minimum):
        raise IVTInputError(f"{flag} must be >= {minimum}, got {value}")


@dataclass
class DataArguments:
    """Where the data comes from and how it is checked, for every command that reads data. A benchmark is named with
    `dataset_name` and read from `data_dir`; anything else (a folder, a Hub id) is `dataset_name` alone."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "cuhk-pedes, icfg-pedes, rstpreid, imagefolder (these with --data_dir), synthpedes (ivt train's "
            "default); a folder (written by `ivt data prepare` or save_to_disk, an image folder with metadata.jsonl "
            "/ metadata.csv, or for ivt pretrain WebDataset / parquet shards); or a Hub dataset id ORG/NAME."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "the Hub dataset's configuration."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "a benchmark's raw copy (annotation JSON + imgs/) or prepared folder; for synthpedes, where it "
            "is generated on first use."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "the Hub dataset's branch, tag or commit."})
    image_column: str | None = field(default=None, metadata={"help": "image column (default: image)."})
    caption_column: str | None = field(
        default=None,
        metadata={"help": "caption column, one string or a list per row (default: captions, else caption)."},
    )
    person_id_column: str | None = field(
        default=None, metadata={"help": "person id column, integers (default: person_id)."}
    )
    min_images_per_id: int | None = field(
        default=None,
        metadata={
            "help": "least images per identity in the train split of your own data (default 2: one image "
            "has no positive image but itself); 1 accepts every identity."
        },
    )
    on_invalid: str = field(
        default="error",
        metadata={"help": "error (stop, naming the broken record) or skip (leave it out and report it)."},
    )
    synth_train_ids: int = field(default=1000, metadata={"help": "SynthPEDES identities in train (ivt train)."})
    synth_validation_ids: int = field(default=100, metadata={"help": "... in validation."})
    synth_test_ids: int = field(default=200, metadata={"help": "... in test."})
    synth_seed: int = field(default=0, metadata={"help": "the SynthPEDES generator's seed."})

    def __post_init__(self):
        self.on_invalid = check_on_invalid(self.on_invalid)
        at_least("--min_images_per_id", self.min_images_per_id, 1)
        for name in SYNTH_FIELDS:
            at_least(f"--{name}", getattr(self, name), 0 if name == "synth_seed" else 1)
        if self.data_dir is not None and self.dataset_name is not None and self.dataset_name not in BENCHMARK_NAMES:
            recognise_source(self.dataset_name, accepts=DESCRIPTIONS)  # a mistyped benchmark: "did you mean ...?"
            raise IVTInputError(
                f"--data_dir goes with a benchmark name ({', '.join(BENCHMARK_NAMES)}), not with "
                f"{self.dataset_name!r}: a folder or a Hub id is itself --dataset_name"
            )

    @property
    def name(self) -> str:
        """`dataset_name`, which must be given, a benchmark's with its `data_dir` (read when a command starts)."""
        if self.dataset_name is None:
            raise IVTInputError("give --dataset_name: a benchmark name (with --data_dir), a folder or a Hub id")
        if self.dataset_name in BENCHMARK_NAMES and self.dataset_name != SYNTHPEDES and self.data_dir is None:
            raise IVTInputError(
                f"--dataset_name {self.dataset_name} needs --data_dir: the folder of your copy (it cannot be "
                "downloaded)"
            )
        return self.dataset_name

    def refuse_unused(self, used: Iterable[str], command: str) -> None:
        """An `IVTInputError` naming the first setting given that `command` does not read (`used`: those it does):
        a setting is never silently dropped."""
        for each in dataclasses.fields(self):
            if each.name not in used and getattr(self, each.name) != each.default:
                raise IVTInputError(f"--{each.name} does not apply to {command}")


def renamed_settings(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """`settings` (a recipe's, or a script's overrides) with their old names (`RENAMED`) replaced, each said in one
    line naming `where`; an old name beside its new one is refused (which one was meant?)."""
    modern = {}
    for key, value in settings.items():
        new = RENAMED.get(key, key)
        if new != key:
            if new in settings:
                raise IVTInputError(f"{where}: give {new} once ({key} is its old name)")
            renamed(f"{where}: {key}", new)
        modern[new] = value
    return modern


class _RenamedFlag(argparse.Action):
    """An old spelling of a flag: stores into the new flag's destination and says so in one line."""

    def __call__(self, parser, namespace, values, option_string=None):
        renamed(option_string, f"--{self.dest}")
        setattr(namespace, self.dest, values)


def add_renamed_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None, **settings: Any) -> None:
    """The old spellings (`RENAMED`; `names`: only those of these new names) as hidden flags of `parser`, each with
    its dashed alias; `settings`: what `add_argument` is told besides (`nargs`, `type`)."""
    for old, new in RENAMED.items():
        if names is None or new in names:
            add_renamed_flag(parser, old, new, **settings)


def add_renamed_flag(parser: argparse.ArgumentParser, old: str, new: str, **settings: Any) -> None:
    """`--old` (and its dashed alias), a hidden old spelling of the flag `--new`: it works, and says so. It takes as
    many values as `--new` does (`ivt pretrain --train_data A B`)."""
    current = next((action for action in parser._actions if action.dest == new), None)
    if current is not None and current.nargs is not None and "nargs" not in settings:
        settings["nargs"] = current.nargs
    spellings = dict.fromkeys((f"--{old}", f"--{old.replace('_', '-')}"))
    parser.add_argument(
        *spellings, dest=new, action=_RenamedFlag, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **settings
    )


def add_data_arguments(
    parser: argparse.ArgumentParser, names: Iterable[str], *, title: str = "data"
) -> argparse._ArgumentGroup:
    """The `DataArguments` fields `names` as an argparse group (each flag with its dashed alias, its help and type
    from the dataclass; `None` defaults, so that `data_arguments` leaves unset ones to the dataclass), with their
    old spellings."""
    names = tuple(names)
    hints = typing.get_type_hints(DataArguments)
    group = parser.add_argument_group(title)
    for each in dataclasses.fields(DataArguments):
        if each.name in names:
            kind = next(arg for arg in (*typing.get_args(hints[each.name]), hints[each.name]) if arg is not type(None))
            spellings = dict.fromkeys((f"--{each.name}", f"--{each.name.replace('_', '-')}"))
            group.add_argument(*spellings, dest=each.name, type=kind, help=each.metadata.get("help"))
    add_renamed_flags(group, names)
    return group


def data_arguments(namespace: argparse.Namespace, names: Iterable[str]) -> DataArguments:
    """The `DataArguments` of the flags `add_data_arguments` added (checked by its `__post_init__`)."""
    return DataArguments(**{name: getattr(namespace, name) for name in names if getattr(namespace, name) is not None})


__all__ = [
    "ON_INVALID",
    "PAIR_FIELDS",
    "RENAMED",
    "SYNTH_FIELDS",
    "DataArguments",
    "add_data_arguments",
    "add_renamed_flag",
    "add_renamed_flags",
    "at_least",
    "check_on_invalid",
    "data_arguments",
    "renamed",
    "renamed_settings",
]
