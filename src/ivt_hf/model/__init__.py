"""The model that travels with the weights: configuration, modelling, image processing and processing.

These four modules are self-contained (they import only torch, transformers, numpy, PIL and each other), because
`save_model_folder` copies them beside the weights for `trust_remote_code=True`. Importing this package registers
them with the transformers Auto classes (the pipelines' among them: docs/pipelines.md).
"""

from importlib.util import find_spec

from transformers import AutoConfig, AutoImageProcessor, AutoProcessor

from .configuration_ivt import IVTConfig
from .image_processing_ivt import IVTImageProcessor
from .processing_ivt import IVTProcessor

AutoConfig.register("ivt", IVTConfig, exist_ok=True)
AutoImageProcessor.register(IVTConfig, image_processor_classes={"pil": IVTImageProcessor}, exist_ok=True)
AutoProcessor.register(IVTConfig, IVTProcessor, exist_ok=True)

# The models need torch. Without it (a Space of `ivt app --runtime onnx`, which runs `ivt_hf.onnx.runtime`), the
# config and the processors are all there is: the model names are then absent, and importing them is an ImportError.
if find_spec("torch") is not None:
    from transformers import AutoModel, AutoModelForPreTraining, AutoModelForZeroShotImageClassification

    from .modeling_ivt import (
        IVTForPreTraining,
        IVTForPreTrainingOutput,
        IVTForZeroShotImageClassification,
        IVTModel,
        IVTOutput,
        IVTPreTrainedModel,
    )

    AutoModel.register(IVTConfig, IVTModel, exist_ok=True)
    AutoModelForPreTraining.register(IVTConfig, IVTForPreTraining, exist_ok=True)
    # pipeline('zero-shot-image-classification') loads this Auto class; pipeline('image-feature-extraction') loads
    # AutoModel
    AutoModelForZeroShotImageClassification.register(IVTConfig, IVTForZeroShotImageClassification, exist_ok=True)

__all__ = [
    "IVTConfig",
    "IVTForPreTraining",
    "IVTForPreTrainingOutput",
    "IVTForZeroShotImageClassification",
    "IVTImageProcessor",
    "IVTModel",
    "IVTOutput",
    "IVTPreTrainedModel",
    "IVTProcessor",
]
