"""`ivt pretrain` in a process that dies hard (`os._exit`, as a kill would) when it starts batch `--die_at` (counted
from 0): run under torchrun by `tests/test_multiprocess_pretraining.py` to leave an interrupted run."""

import os
import sys

import ivt_hf.training.pretraining as pretraining
from ivt_hf.cli import main

die_at = int(sys.argv[1])
real_call = pretraining.PairCollator.__call__


def call_or_die(self, pairs, batch_index):
    if batch_index == die_at:
        os._exit(9)
    return real_call(self, pairs, batch_index)


pretraining.PairCollator.__call__ = call_or_die
sys.exit(main(sys.argv[2:]))
