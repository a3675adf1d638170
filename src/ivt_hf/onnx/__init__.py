"""IVT in ONNX: `ivt export onnx` (optimum's exporter with IVT's ONNX configurations: `config.py`, `export.py`) and
an onnxruntime encoder that never imports torch (`runtime.py`), which search, evaluation and the app use with
`--runtime onnx`.

An exported folder holds `image_encoder.onnx`, `text_encoder.onnx`, the model's `config.json`, its processor and
`ivt_onnx.json` (the model's fingerprint, the precision, each file's size and SHA-256). Nothing here is imported
eagerly: `ivt_hf.onnx.runtime` must load where only onnxruntime is installed (a Space exported for it), and the
exporter needs the `onnx` extra (optimum, onnx, onnxruntime).
"""

_LAZY = {
    "IVTImageOnnxConfig": "ivt_hf.onnx.config",
    "IVTTextOnnxConfig": "ivt_hf.onnx.config",
    "export_onnx": "ivt_hf.onnx.export",
    "ExportReport": "ivt_hf.onnx.export",
    "IVTOnnxEncoder": "ivt_hf.onnx.runtime",
    "OnnxFolderError": "ivt_hf.onnx.runtime",
    "load_onnx_model_and_processor": "ivt_hf.onnx.runtime",
    "is_onnx_folder": "ivt_hf.onnx.runtime",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ivt_hf.onnx' has no attribute {name!r}")


__all__ = sorted(_LAZY)
