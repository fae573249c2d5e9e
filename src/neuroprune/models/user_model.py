"""Models of one's own, named by reference: ``module.path:factory`` or ``path/to/file.py:factory``.

The factory is any callable that returns an ``nn.Module`` (a class, or a function). It is
called with the keyword arguments given (``model_args:`` in a YAML file), plus whichever of
``in_channels``, ``image_size`` and ``num_classes`` its signature takes and the caller knows
from the data. Importing the module or file runs its code, as with any Python tool: name
only files you trust.

Example:
    >>> model = create_user_model("torch.nn:Identity")
    >>> type(model).__name__
    'Identity'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError

# what callers learn from the data; passed only to factories whose signature takes them
DATA_OPTIONS = ("in_channels", "image_size", "num_classes")


def is_model_reference(name: str) -> bool:
    """Whether ``name`` names a factory (``module:factory`` or ``file.py:factory``), not a registered model."""
    return isinstance(name, str) and ":" in name


def absolute_reference(name: str) -> str:
    """``file.py:factory`` with the file's absolute path (so a run resumes from any folder); others unchanged."""
    if not is_model_reference(name):
        return name
    target, _, factory = name.rpartition(":")
    if not target.endswith(".py"):
        return name
    return f"{Path(target).expanduser().resolve()}:{factory}"


def resolve_factory(reference: str) -> Callable[..., Any]:
    """Import the module or file of ``reference`` and return its factory.

    Raises:
        ModelError: the reference is malformed, the module or file cannot be imported
            (its error on one line), or it has no callable of that name.
    """
    target, _, attribute = reference.rpartition(":")
    if not target or not attribute or not all(part.isidentifier() for part in attribute.split(".")):
        raise ModelError(f"--model {reference!r} is not a model reference: write module.path:factory or "
                         "path/to/file.py:factory (a registered name has no colon)")
    module = _import_file(target) if target.endswith(".py") else _import_module(target)
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ModelError(f"{target} has no {attribute!r}; it defines: {', '.join(names[:20]) or 'no callables'}")
        found = getattr(found, part)
    if not callable(found):
        raise ModelError(f"{target}:{attribute} is a {type(found).__name__}, not a class or function that builds "
                         "a model")
    return found


def create_user_model(reference: str, **kwargs: Any) -> nn.Module:
    """Build the model that ``reference``'s factory returns.

    Args:
        reference: ``module.path:factory`` or ``path/to/file.py:factory``.
        **kwargs: keyword arguments for the factory. ``in_channels``, ``image_size`` and
            ``num_classes`` are passed only if the factory's signature takes them.

    Returns:
        The factory's model.

    Raises:
        ModelError: the factory cannot be found, rejects the arguments, raises, or
            returns something other than an ``nn.Module``.
    """
    factory = resolve_factory(reference)
    accepted = _accepted(factory)
    given = {k: v for k, v in kwargs.items() if k not in DATA_OPTIONS or accepted is None or k in accepted}
    try:
        model = factory(**given)
    except TypeError as exc:
        raise ModelError(f"{reference} does not accept the options {sorted(given)}: {_one_line(exc)}; set its "
                         "arguments with model_args: in the YAML file") from None
    except Exception as exc:  # noqa: BLE001 - the user's own code: report it on one line like any bad input
        raise ModelError(
            f"{reference} raised {type(exc).__name__} while building the model: {_one_line(exc)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{reference} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _accepted(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword names the factory takes; None when it takes ``**kwargs`` (or has no readable signature)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _import_module(name: str) -> Any:
    """Import ``name``, with the working folder on the path (as ``python -m`` has it)."""
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {name!r} for --model: {_one_line(exc)}; run from the folder that "
                         "holds it, or name the file: path/to/file.py:factory") from None
    except Exception as exc:  # noqa: BLE001 - the user's module: any error it raises is reported in one line
        raise ModelError(f"importing {name} raised {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def _import_file(path_text: str) -> Any:
    """Import a ``.py`` file once per process (by its absolute path); its folder is on the path while it runs."""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"model file {path_text} does not exist; --model takes path/to/file.py:factory")
    name = "neuroprune_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{path_text} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it runs
    sys.path.insert(0, str(path.parent))  # so the file can import the modules beside it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: any error it raises is reported in one line
        del sys.modules[name]
        raise ModelError(f"importing {path_text} raised {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__
