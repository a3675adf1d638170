"""Train IVT (MLA + BMM + CMPM) on a benchmark: the same entry point as `ivt train` (`train_from_arguments`).

One process (CPU or one GPU):
    python scripts/train.py --dataset_name synthpedes --data_dir .cache/synth --output_dir runs/tiny \
        --model_preset tiny --max_steps 200 --per_device_train_batch_size 32 --use_cpu
A recipe file, with flags overriding it:
    python scripts/train.py src/ivt_hf/recipes/synthpedes-cpu.json --output_dir runs/demo
Several GPUs (recipes for the real benchmarks: src/ivt_hf/recipes/{cuhk-pedes,icfg-pedes,rstpreid}.json):
    accelerate launch --multi_gpu --num_processes 4 scripts/train.py src/ivt_hf/recipes/cuhk-pedes.json \
        --data_dir /data/CUHK-PEDES --output_dir runs/cuhk
    torchrun --nproc_per_node 4 scripts/train.py src/ivt_hf/recipes/cuhk-pedes.json --data_dir ... --output_dir ...
Two CPU processes (gloo), e.g. to check data-parallel behaviour:
    torchrun --nproc_per_node 2 scripts/train.py ... --use_cpu
Resume after an interruption: add --resume_from_checkpoint latest (or a checkpoint folder).
The same with the package's command: `ivt train ...`, `torchrun --nproc_per_node 4 -m ivt_hf train ...`.
"""

import sys

from ivt_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
