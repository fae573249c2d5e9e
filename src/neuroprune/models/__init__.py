"""Model registry and the models neuroprune ships."""

from . import cnn, efficientnet, imagenet, mlp, resnet, unet, vgg, vit  # noqa: F401  (registers the models)
from ._registry import create_model, describe_model, list_models, register_model
from .spec import from_spec, to_spec

__all__ = ["create_model", "describe_model", "from_spec", "list_models", "register_model", "to_spec"]
