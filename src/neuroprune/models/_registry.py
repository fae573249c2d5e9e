"""Model registry: models are created by name, so configs and the CLI can name them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ModelError
from .user_model import create_user_model, is_model_reference

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``name`` (decorator)."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().splitlines()[0]
        return factory

    return decorate


def list_models() -> list[str]:
    """Names of every registered model, sorted.

    Example:
        >>> "mlp" in list_models()
        True
    """
    return sorted(_MODELS)


def describe_model(name: str) -> str:
    """One-line description of a registered model."""
    _check_name(name)
    return _DESCRIPTIONS[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: a name from :func:`list_models`, or a factory of one's own as
            ``module.path:factory`` or ``path/to/file.py:factory`` (importing it runs its code;
            see :mod:`neuroprune.models.user_model`).
        **kwargs: the factory's options, e.g. ``in_channels``, ``image_size``, ``num_classes``.

    Returns:
        A freshly initialised model (seed torch beforehand for reproducible weights).

    Raises:
        ModelError: the name is unknown or an option does not fit the factory.

    Example:
        >>> model = create_model("mlp", in_channels=1, image_size=8, num_classes=10)
    """
    if is_model_reference(name):  # module.path:factory or file.py:factory
        return create_user_model(name, **kwargs)
    _check_name(name)
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:  # unknown keyword for this factory
        raise ModelError(f"model {name!r} does not accept these options: {exc}") from None


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
