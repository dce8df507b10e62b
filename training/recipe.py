"""Recipes: a flat YAML of ``ModelDataArguments`` fields plus the method config's fields, with ``--set``
overrides on top. Everything a user can get wrong here ends in one ``RecipeError`` that names the recipe
file and line (or the ``--set`` flag) and the key; the command line turns it into exit code 2.

On a machine without a GPU a recipe still runs: ``use_cpu`` is switched on (so that ``torchrun`` and
``accelerate launch`` start real gloo data parallelism instead of independent copies) and bf16/fp16 mixed
precision is switched off, with one log line saying so.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from iopo_eval.data.store import DataError
from iopo_eval.training.model_args import ModelDataArguments

if TYPE_CHECKING:  # imported lazily below: they pull in torch and transformers
    from iopo_eval.training.base_config import BaseTrainConfig
    from iopo_eval.training.base_trainer import SequenceLossTrainer

log = logging.getLogger(__name__)
RECIPES_DIR = Path(__file__).parent / "recipes"
METHODS = ("iopo", "dpo", "sft")
_MIXED_PRECISION = ("bf16", "fp16")


class RecipeError(DataError):
    """A recipe or a ``--set`` override is unusable; the message names where and which key."""


@dataclass
class Recipe:
    path: Path
    settings: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)  # key -> "recipe.yaml line 7" or "--set k=v"

    def where(self, key: str) -> str:
        return self.origins.get(key, str(self.path))


def method_classes(method: str) -> tuple[type[BaseTrainConfig], type[SequenceLossTrainer]]:
    if method == "iopo":
        from iopo_eval.training.iopo_config import IOPOConfig
        from iopo_eval.training.iopo_trainer import IOPOTrainer

        return IOPOConfig, IOPOTrainer
    if method == "dpo":
        from iopo_eval.training.dpo_config import DPOConfig
        from iopo_eval.training.dpo_trainer import DPOTrainer

        return DPOConfig, DPOTrainer
    if method == "sft":
        from iopo_eval.training.sft_config import SFTConfig
        from iopo_eval.training.sft_trainer import SFTTrainer

        return SFTConfig, SFTTrainer
    raise RecipeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def resolve_recipe(path_or_name: str) -> Path:
    """A path, or the name of a packaged recipe (``iopo_qwen2_7b_lora``)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    packaged = RECIPES_DIR / (path_or_name if path_or_name.endswith(".yaml") else f"{path_or_name}.yaml")
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"no recipe file {path_or_name!r}; packaged recipes: {known}")


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """The recipe's settings with the overrides applied, and where each setting came from."""
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of settings, got {type(data).__name__}")
    origins: dict[str, str] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            origins[str(key_node.value)] = f"{path} line {key_node.start_mark.line + 1}"
    for item in overrides or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RecipeError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            data[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            data[key] = value
        origins[key] = f"--set {item}"
    return Recipe(path, data, origins)


# ---------------------------------------------------------------------------------------- validation
def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def check_value(value: Any, hint: Any) -> Any:
    """``value`` coerced to the field type ``hint``, or ValueError saying what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(value, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(" or ".join(dict.fromkeys(errors)))
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"expected one of {', '.join(map(repr, args))}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError("expected true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("expected an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError("expected a number")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError("expected a string")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        choices = [m.value for m in hint]
        if value in choices or isinstance(value, hint):
            return value
        raise ValueError(f"expected one of {', '.join(map(str, choices))}")
    container = origin or hint
    if container in (list, dict) and not isinstance(value, container):
        raise ValueError(f"expected a {container.__name__}")
    return value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def parse_recipe(method: str, recipe: Recipe | dict[str, Any]) -> tuple[ModelDataArguments, Any]:
    """The two dataclasses of a recipe; unknown keys, wrong types and invalid settings are RecipeErrors."""
    if isinstance(recipe, dict):
        recipe = Recipe(Path("<settings>"), dict(recipe))
    config_cls, _ = method_classes(method)
    settings = {k: v for k, v in recipe.settings.items() if k != "method"}
    model_fields, config_fields = _field_types(ModelDataArguments), _field_types(config_cls)
    unknown = [k for k in settings if k not in model_fields and k not in config_fields]
    if unknown:
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, [*model_fields, *config_fields], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"{recipe.where(key)}: unknown setting {key!r}{hint}")
        raise RecipeError(
            "; ".join(lines) + f". Settings are ModelDataArguments and {config_cls.__name__} fields."
        )
    model_kwargs: dict[str, Any] = {}
    config_kwargs: dict[str, Any] = {}
    for key, value in settings.items():
        target, hint = (
            (model_kwargs, model_fields[key]) if key in model_fields else (config_kwargs, config_fields[key])
        )
        try:
            target[key] = check_value(value, hint)
        except ValueError as exc:
            raise RecipeError(
                f"{recipe.where(key)}: {key}={value!r}: {exc} ({key} is {_type_name(hint)})"
            ) from None
    try:
        model_args = ModelDataArguments(**model_kwargs)
    except ValueError as exc:
        raise RecipeError(f"{recipe.path}: {exc}") from None
    if not model_args.model_name_or_path or not model_args.train_file:
        raise RecipeError(f"{recipe.path}: a recipe needs model_name_or_path and train_file")
    try:
        config = config_cls(**config_kwargs)
    except (ValueError, TypeError, NotImplementedError) as exc:
        # TrainingArguments' own checks (a strategy name, bf16 without a device, ...): their text names the flag
        raise RecipeError(f"{recipe.path}: {exc}") from None
    except ImportError as exc:  # e.g. deepspeed=... without the deepspeed package
        raise RecipeError(f"{recipe.path}: a setting needs a package that is not installed: {exc}") from None
    return model_args, config


# ------------------------------------------------------------------------------------------- devices
def accelerator_available() -> bool:
    """A device the Trainer would train on instead of the CPU (CUDA, XPU or Apple MPS)."""
    import torch

    if torch.cuda.is_available():
        return True
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def apply_device_defaults(recipe: Recipe, has_accelerator: bool | None = None) -> list[str]:
    """Make a GPU recipe run on a CPU-only machine; returns the changes made (each also logged once)."""
    if has_accelerator is None:
        has_accelerator = accelerator_available()
    if has_accelerator:
        return []
    notes = []
    settings = recipe.settings
    if "use_cpu" not in settings:
        settings["use_cpu"] = True  # gloo data parallelism under torchrun/accelerate, not separate copies
    for flag in _MIXED_PRECISION:
        if settings.get(flag) is True:
            settings[flag] = False
            dtype = settings.get("dtype", "auto")
            notes.append(
                f"no GPU: {flag} mixed precision is off for this CPU run ({recipe.where(flag)}); the weights "
                f"load as dtype={dtype}. Set {flag}: false in the recipe to silence this line."
            )
    for note in notes:
        log.warning(note)
    return notes
