"""The local Hub-protocol server module (`local_hub.py`), loaded once under one module name so that every test
module shares its classes, and the token the tests give it."""

import importlib.util
import sys
from pathlib import Path

TOKEN = "hf_backbonetesttoken123"


def load_local_hub():
    """`local_hub.py` as the module `local_hub` (dataclasses look their module up in `sys.modules`)."""
    if "local_hub" in sys.modules:  # loaded by another test module already
        return sys.modules["local_hub"]
    spec = importlib.util.spec_from_file_location("local_hub", Path(__file__).parent / "local_hub.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_hub"] = module
    spec.loader.exec_module(module)
    return module


def hub_env(hub, tmp_path) -> dict:
    """The environment of a subprocess that reads datasets and models from the local `hub`, caching under `tmp_path`."""
    import os

    return {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
    }
