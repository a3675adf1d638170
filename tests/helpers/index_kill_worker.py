"""`ivt index build` in a process that dies hard (`os._exit`, as a kill would) when it starts encoding its
`--die_at` -th chunk: run under torchrun by `tests/search/test_index_building.py` to leave a half-finished build."""

import os
import sys

import ivt_hf.search.building as building
from ivt_hf.cli import main

die_at = int(sys.argv[1])
encoded = 0
real_encode = building.encode_image_files


def encode_or_die(*args, **kwargs):
    global encoded
    encoded += 1
    if encoded == die_at:
        os._exit(9)
    return real_encode(*args, **kwargs)


building.encode_image_files = encode_or_die
sys.exit(main(sys.argv[2:]))
