"""`ivt_hf.atomic`: a state file is the old one or the new one, never a 0-byte or half-written one, on a real full
disk (a small tmpfs: conftest's `small_tmpfs`); and what the libraries say when the disk refuses them is read back
into one `OSError` (`disk_error`)."""

from __future__ import annotations

import errno
import json
import os
import re

import pytest
from helpers.tmpfs import fill

from ivt_hf.atomic import (
    WriteFailedError,
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_text,
    disk_error,
    read_json_object,
    refusals_naming,
)
from ivt_hf.errors import IVTInputError
from ivt_hf.search import GalleryIndexError


def test_a_state_file_survives_the_full_disk_that_stops_its_rewrite(small_tmpfs):
    disk = small_tmpfs("300k")
    state = disk / "build.json"
    atomic_write_json(state, {"chunks": 1})
    fill(disk)
    with pytest.raises(OSError) as refused:
        atomic_write_json(state, {"chunks": list(range(100_000))})
    assert (refused.value.errno, refused.value.filename) == (errno.ENOSPC, str(state))
    assert json.loads(state.read_text()) == {"chunks": 1}  # the old state, whole
    assert sorted(path.name for path in disk.iterdir()) == [".filler", "build.json"]  # no temporary file left


def test_a_new_state_file_on_a_full_disk_is_absent_not_empty(small_tmpfs):
    """The plain `path.write_text` this replaces leaves a 0-byte file (open succeeds, the write is refused)."""
    disk = small_tmpfs("300k")
    fill(disk)
    with pytest.raises(OSError) as refused:
        atomic_write_text(disk / "plan.json", "{}")
    assert (refused.value.errno, refused.value.filename) == (errno.ENOSPC, str(disk / "plan.json"))
    assert sorted(path.name for path in disk.iterdir()) == [".filler"]
    with pytest.raises(OSError):
        (disk / "plain.json").write_text("{}")
    assert (disk / "plain.json").stat().st_size == 0  # what the state files were before


def test_tensors_are_written_whole_or_not_at_all(small_tmpfs):
    import torch
    from safetensors.torch import load_file

    disk = small_tmpfs("300k")
    atomic_save_tensors(disk / "chunk.safetensors", {"embeddings": torch.arange(6.0).reshape(3, 2)})
    assert torch.equal(load_file(disk / "chunk.safetensors")["embeddings"], torch.arange(6.0).reshape(3, 2))
    with pytest.raises(OSError) as refused:
        atomic_save_tensors(disk / "big.safetensors", {"embeddings": torch.ones(200_000)})
    assert (refused.value.errno, refused.value.filename) == (errno.ENOSPC, str(disk / "big.safetensors"))
    assert sorted(path.name for path in disk.iterdir()) == ["chunk.safetensors"]


def _refusal_of(write) -> BaseException:
    try:
        write()
    except Exception as error:
        return error
    raise AssertionError("the write was not refused")


def test_disk_error_reads_what_each_library_says_on_a_real_full_disk(small_tmpfs):
    import torch
    from safetensors.torch import save_file

    disk = small_tmpfs("300k")
    big = {"embeddings": torch.ones(200_000)}
    safetensors_error = _refusal_of(lambda: save_file(big, str(disk / "a.safetensors")))
    assert type(safetensors_error).__name__ == "SafetensorError"
    found = disk_error(safetensors_error)
    assert (type(found), found.errno, found.filename) == (OSError, errno.ENOSPC, None)

    def torch_to_a_file():
        with open(disk / "b.pt", "wb") as handle:
            torch.save(big, handle)

    torch_error = _refusal_of(torch_to_a_file)
    assert type(torch_error) is RuntimeError
    assert disk_error(torch_error).errno == errno.ENOSPC  # the file's OSError, torch's context
    (disk / "b.pt").unlink(missing_ok=True)

    torch_path_error = _refusal_of(lambda: torch.save(big, disk / "c.pt"))
    found = disk_error(torch_path_error)
    assert isinstance(found, WriteFailedError) and found.errno is None
    assert str(torch_path_error).splitlines()[0] in found.strerror
    (disk / "c.pt").unlink(missing_ok=True)

    faiss = pytest.importorskip("faiss")
    index = faiss.IndexFlatIP(64)
    index.add(torch.ones(4000, 64).numpy())
    found = disk_error(_refusal_of(lambda: faiss.write_index(index, str(disk / "d.faiss"))))
    assert (found.errno, found.filename) == (errno.ENOSPC, str(disk / "d.faiss"))


def test_other_errors_are_not_read_as_the_disk_refusing():
    assert disk_error(ValueError("No space left on device")) is None  # only the libraries' own types
    assert disk_error(RuntimeError("a message that happens to say (No space left on device)")) is None
    assert disk_error(RuntimeError("write error in /x/y.faiss: 1 != 2 (Disk quota exceeded)")).errno == errno.EDQUOT
    assert disk_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None
    not_found = FileNotFoundError(errno.ENOENT, "No such file or directory", "x")
    assert disk_error(not_found) is not_found  # an OSError is itself; the caller decides what it means


def test_refusals_naming_names_the_folder_only_when_the_error_names_nothing(tmp_path):
    with pytest.raises(OSError) as named:
        with refusals_naming(tmp_path / "run"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert (named.value.errno, named.value.filename) == (errno.ENOSPC, str(tmp_path / "run"))
    assert isinstance(named.value.__cause__, OSError)
    with pytest.raises(PermissionError) as kept:
        with refusals_naming(tmp_path / "run"):
            raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else")
    assert kept.value.filename == "/somewhere/else"
    with pytest.raises(KeyError):
        with refusals_naming(tmp_path / "run"):
            raise KeyError("a bug stays a bug")


def test_torch_saving_into_a_folder_it_may_not_write_is_a_permission_refusal(tmp_path):
    """torch.save to a path keeps only strerror's words ("open file failed with strerror: Permission denied")."""
    import torch
    from helpers.permissions import permissions_enforced

    read_only = tmp_path / "read_only"
    read_only.mkdir(mode=0o555)
    with permissions_enforced():
        refused = _refusal_of(lambda: torch.save({"a": torch.ones(2)}, read_only / "x.pt"))
    assert type(refused) is RuntimeError
    assert (type(disk_error(refused)), disk_error(refused).errno) == (PermissionError, errno.EACCES)


def test_read_json_object_names_the_file_and_what_it_should_hold(tmp_path):
    """The one reader of JSON state and settings files: a JSON object back; for a file that is not JSON, or not one
    object, one error of the caller's type naming the file as the caller names it; a missing file stays an OSError."""
    good, broken, listed = tmp_path / "good.json", tmp_path / "broken.json", tmp_path / "listed.json"
    good.write_text('{"chunks": 2}')
    broken.write_text('{"chunks": ')
    listed.write_text("[1, 2]")
    assert read_json_object(good) == {"chunks": 2}
    with pytest.raises(IVTInputError, match=rf"^{re.escape(str(broken))} is not valid JSON: Expecting value: line 1"):
        read_json_object(broken)
    with pytest.raises(GalleryIndexError) as not_an_object:
        read_json_object(listed, GalleryIndexError, name="the plan", holds="one plan", advice="; start again")
    assert str(not_an_object.value) == "the plan must hold one plan, found list; start again"
    with pytest.raises(FileNotFoundError):
        read_json_object(tmp_path / "missing.json")
