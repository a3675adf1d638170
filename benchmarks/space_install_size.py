"""What a Space installs: `ivt app --export_space` for the PyTorch model folder and `--runtime onnx` for its ONNX
export, each Space's `requirements.txt` installed with pip into its own fresh virtual environment, and the size of
that environment's site-packages (pip's own files, there in an empty environment too, counted apart).

    python benchmarks/space_install_size.py                 (a few minutes: two installs, about 2 GB of files)
    python benchmarks/space_install_size.py --work_dir DIR  (keep the Spaces and environments in DIR)

Both installs take the versions of constraints.txt (`pip install -r requirements.txt -c constraints.txt`, run in the
Space folder, as the Space's builder runs it): the measured sizes are those of the versions the project tests. The
model is a tiny one (the Spaces' own folders are not measured: the requirements are).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 1e6


def make_spaces(work: Path) -> dict[str, Path]:
    """A tiny model folder, its ONNX export, an index of 4 crops, and the two Spaces exported from them."""
    import torch
    from PIL import Image

    from ivt_hf import IVTConfig, IVTModel, IVTProcessor
    from ivt_hf.cli import main
    from ivt_hf.hub import save_model_folder
    from ivt_hf.onnx.export import export_onnx

    torch.manual_seed(0)
    config = IVTConfig.from_preset("micro", num_hidden_layers=1, patch_stride=16)
    save_model_folder(IVTModel(config), IVTProcessor.from_config(config), work / "model")
    export_onnx(work / "model", work / "onnx")
    (work / "images").mkdir()
    for number in range(4):
        pixels = np.random.default_rng(number).integers(0, 256, (96, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(work / "images" / f"{number}.png")
    build = f"index build --model {work / 'model'} --images {work / 'images'} --output_dir {work / 'index'}"
    assert main(build.split()) == 0
    spaces = {"torch": work / "space-torch", "onnx": work / "space-onnx"}
    for runtime, space in spaces.items():
        model = work / ("model" if runtime == "torch" else "onnx")
        argv = f"app --runtime {runtime} --model {model} --index {work / 'index'} --export_space {space}"
        assert main(argv.split()) == 0
    return spaces


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed)."""
    return sum(os.lstat(os.path.join(parent, name)).st_size for parent, _, files in os.walk(folder) for name in files)


def install(space: Path, venv: Path) -> dict:
    """A fresh environment with the Space's requirements: site-packages bytes (less pip's own), the packages, the
    five largest."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    empty = folder_bytes(site)
    command = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*command, "-r", "requirements.txt", "-c", str(ROOT / "constraints.txt")], cwd=space, check=True)
    listed = json.loads(subprocess.check_output([python, "-m", "pip", "list", "--format", "json"], text=True))
    sizes = {}
    for entry in sorted(site.iterdir()):
        name = entry.name.split("-")[0].split(".")[0].lower()  # torch/ and torch-2.13.0.dist-info alike
        sizes[name] = sizes.get(name, 0) + (folder_bytes(entry) if entry.is_dir() else entry.stat().st_size)
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    return {
        "site_packages_mb": (folder_bytes(site) - empty) / MB,
        "packages": len(listed) - 2,  # pip, setuptools
        "torch": next((entry["version"] for entry in listed if entry["name"] == "torch"), None),
        "largest": [(name, size / MB) for name, size in largest],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", help="where the Spaces and environments are made (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="space-size-") as temporary:
        work = Path(args.work_dir or temporary)
        work.mkdir(parents=True, exist_ok=True)
        spaces = make_spaces(work)
        found = {runtime: install(space, work / f"venv-{runtime}") for runtime, space in spaces.items()}
    print(f"\n{'Space':<32} {'site-packages MB':>16} {'packages':>9}  largest (MB)")
    for runtime, result in found.items():
        requirements = "torch " + str(result["torch"]) if result["torch"] else "onnxruntime, no torch"
        largest = ", ".join(f"{name} {size:.0f}" for name, size in result["largest"])
        print(
            f"{runtime + ' (' + requirements + ')':<32} {result['site_packages_mb']:>16,.0f} {result['packages']:>9}  "
            f"{largest}"
        )
    ratio = found["torch"]["site_packages_mb"] / found["onnx"]["site_packages_mb"]
    print(f"the torch Space installs {ratio:.1f}x the onnxruntime Space's bytes")


if __name__ == "__main__":
    main()
