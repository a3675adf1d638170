"""Running a script in a Python that cannot import ivt_hf: what a user of a shared model folder has."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_IVT_HF = """
import sys

class BlockIvtHf:
    def find_spec(self, name, path=None, target=None):
        if name == "ivt_hf" or name.startswith("ivt_hf."):
            raise ImportError("this process must not import ivt_hf")

sys.meta_path.insert(0, BlockIvtHf())
"""


def run_without_ivt_hf(script: str, hf_home: Path) -> subprocess.CompletedProcess:
    """Run `script` (dedented) offline, with ivt_hf unimportable and a fresh HF cache."""
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "PATH": "/usr/bin:/bin"}
    code = BLOCK_IVT_HF + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
