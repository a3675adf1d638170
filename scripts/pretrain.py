"""Pre-train IVT on image-text pairs (ITC + ITM + MLM, the authors' first stage): the same entry point as
`ivt pretrain` (`ivt_hf.training.pretraining.pretrain`).

Your own WebDataset shards (KEY.jpg + KEY.txt per pair), on one CPU or GPU:
    python scripts/pretrain.py --dataset_name /data/pairs --output_dir runs/pretrain --model_preset tiny --max_steps 200
The authors' settings, on 8 GPUs (their fine-tuning then starts from runs/pretrain):
    accelerate launch --multi_gpu --num_processes 8 scripts/pretrain.py src/ivt_hf/recipes/pretrain-ivt.json \
        --dataset_name /data/cc3m-shards --output_dir runs/pretrain
Several nodes: `accelerate launch --num_machines N --machine_rank R --main_process_ip HOST ...` or
`torchrun --nnodes N ...`, the same arguments; --output_dir must be a folder every node sees (each process writes its
stream position and random state into the checkpoints). Resume after an interruption with the same number of
processes: add --resume_from_checkpoint latest.
"""

import sys

from ivt_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
