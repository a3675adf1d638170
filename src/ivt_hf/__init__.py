"""ivt_hf: IVT text-based person retrieval (Shu et al. 2022) as a Hugging Face transformers model.

Importing the package registers `IVTConfig`, `IVTModel`, `IVTImageProcessor` and `IVTProcessor` with the transformers
Auto classes, so `AutoModel.from_pretrained(folder)` and `AutoProcessor.from_pretrained(folder)` work.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .backbones import build_model_from_backbones, load_backbones
from .configuration_ivt import IVTConfig
from .convert_ivt_original_checkpoint import convert_original_checkpoint
from .hub import register_for_remote_code, save_model_folder
from .image_processing_ivt import IVTImageProcessor
from .modeling_ivt import IVTModel, IVTOutput, IVTPreTrainedModel
from .processing_ivt import IVTProcessor

__version__ = "0.1.0"

AutoConfig.register("ivt", IVTConfig, exist_ok=True)
AutoModel.register(IVTConfig, IVTModel, exist_ok=True)
AutoImageProcessor.register(IVTConfig, image_processor_classes={"pil": IVTImageProcessor}, exist_ok=True)
AutoProcessor.register(IVTConfig, IVTProcessor, exist_ok=True)

__all__ = [
    "IVTConfig",
    "IVTImageProcessor",
    "IVTModel",
    "IVTOutput",
    "IVTPreTrainedModel",
    "IVTProcessor",
    "build_model_from_backbones",
    "convert_original_checkpoint",
    "load_backbones",
    "register_for_remote_code",
    "save_model_folder",
]
