"""What the command tests share: driving `ivt` in-process (`ivt_hf.cli.main`) and a tiny model folder to drive it on."""

from __future__ import annotations

from pathlib import Path

from ivt_hf.cli import main


def run_cli(argv: list[str], capsys) -> tuple[int | str, str, str]:
    """`ivt ARGV`'s exit code, stdout and stderr (pytest's `capsys`); a KeyboardInterrupt that escapes the command's
    guard becomes the code "KeyboardInterrupt escaped" instead of stopping the test session."""
    try:
        code = main(argv)
    except KeyboardInterrupt:
        code = "KeyboardInterrupt escaped"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    """The lines of stderr that carry `error:`."""
    return [line for line in err.splitlines() if "error:" in line]


def save_tiny_model_folder(folder: Path, seed: int = 0, **overrides) -> Path:
    """A `from_pretrained` folder of a random one-block tiny IVT (the `micro` preset at patch stride 16, drawn with
    `seed`; `overrides` change the config) and its processor."""
    import torch

    from ivt_hf import IVTConfig, IVTModel, IVTProcessor
    from ivt_hf.hub import save_model_folder

    torch.manual_seed(seed)
    config = IVTConfig.from_preset("micro", **{"num_hidden_layers": 1, "patch_stride": 16, **overrides})
    return save_model_folder(IVTModel(config), IVTProcessor.from_config(config), folder)


def write_camera_gallery(folder: Path, counts: tuple[tuple[str, int], ...] = (("camA", 6), ("camB", 5))) -> Path:
    """A gallery of random-pixel 80x40 PNGs, `counts` images in each camera folder (`camA/000.png`, ...), the same
    pixels for the same counts (seed 0)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for camera, count in counts:
        for number in range(count):
            path = folder / camera / f"{number:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).save(path)
    return folder
