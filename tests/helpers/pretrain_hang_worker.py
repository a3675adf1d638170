"""`ivt pretrain` that stops after optimizer step `--hang_at` (the first argument) and waits to be killed, after writing
OUT/hung_rank{R}.json (`--hang_out`, the second argument) with its pid: run under torchrun by
`tests/training/test_multiprocess_pretraining.py`, which then kills every process of the run for real, past a
checkpoint and with the DataLoader workers mid-read, as a crash would."""

import json
import os
import sys
import time
from pathlib import Path

from ivt_hf.cli import main
from ivt_hf.training.pretraining import PretrainingRun

hang_at, out = int(sys.argv[1]), Path(sys.argv[2])
real_log = PretrainingRun._log


def log_then_hang(self, *args, **kwargs):
    real_log(self, *args, **kwargs)
    if self.step == hang_at:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"hung_rank{self.rank}.json").write_text(json.dumps({"pid": os.getpid()}))
        while True:
            time.sleep(60)


PretrainingRun._log = log_then_hang
sys.exit(main(sys.argv[3:]))
