"""Face models: the face ViT, its registry of named configurations, the head and the margins."""

from ._registry import create_model as create_model
from ._registry import get_config as get_config
from ._registry import list_models as list_models
from .margins import MARGINS as MARGINS
from .vit import FaceViT as FaceViT
from .vit import FaceViTConfig as FaceViTConfig
from ..recipe import DEFAULT_MODEL as DEFAULT_MODEL
