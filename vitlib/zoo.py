"""Course checkpoints: weights as safetensors, configuration as JSON; nothing is unpickled (chapter 00).

A checkpoint `name` is two files side by side in the zoo directory:
`name.safetensors` (the state_dict) and `name.json`
(`{"format_version", "class", "config", "metrics", "sha256", "tensors"}`).
A model class is known to the zoo by its name once registered, and must be buildable as `cls(config)`
from its config dataclass:

    @register_model(config_cls=GPTConfig)      # or: register(GPT, GPTConfig)
    class GPT(nn.Module):
        def __init__(self, config: GPTConfig): ...

The zoo directory is the repository's `data/zoo/`, or `$VITLIB_ZOO` when set. `load` imports vitlib's model
modules itself, so `zoo.load("clip-shapes")` works without importing `vitlib.clip` first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["register", "register_model", "registered", "save", "load", "load_config", "available", "verify",
           "zoo_dir"]

FORMAT_VERSION = 1
# the modules that define the course's models, imported by `load` when a checkpoint's class is not yet registered
MODEL_MODULES = ("vitlib.transformer", "vitlib.vision", "vitlib.classifier", "vitlib.clip", "vitlib.vlp")
_REGISTRY: dict[str, tuple[type[nn.Module], type]] = {}


def register(cls: type[nn.Module], config_cls: type) -> type[nn.Module]:
    """Make `cls` loadable by its class name; `cls(config_cls(...))` must build the model. Returns `cls`."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register expects an nn.Module subclass, got {cls!r}")
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise TypeError(f"config_cls must be a dataclass, got {config_cls!r}")
    known = _REGISTRY.get(cls.__name__)
    # Re-running a notebook cell redefines the class in the same module: that replaces it; another module clashes.
    if known is not None and known[0].__module__ != cls.__module__:
        raise ValueError(f"a model class named {cls.__name__!r} is already registered from module "
                         f"{known[0].__module__!r}; rename {cls.__module__}.{cls.__name__}")
    _REGISTRY[cls.__name__] = (cls, config_cls)
    return cls


def register_model(*, config_cls: type):
    """Class decorator form of `register`: `@register_model(config_cls=MyConfig)`."""
    return lambda cls: register(cls, config_cls)


def registered() -> list[str]:
    """Names of the registered model classes."""
    return sorted(_REGISTRY)


def zoo_dir(directory: str | os.PathLike | None = None) -> Path:
    """The checkpoint directory: `directory`, else `$VITLIB_ZOO`, else the repository's `data/zoo/`."""
    if directory is not None:
        return Path(directory)
    if os.environ.get("VITLIB_ZOO"):
        return Path(os.environ["VITLIB_ZOO"])
    return Path(__file__).resolve().parent.parent / "data" / "zoo"


def _paths(name_or_path: str | os.PathLike, directory) -> tuple[Path, Path]:
    """(json, safetensors) paths: a bare name lives in the zoo directory, a path (with a folder or suffix) as given."""
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise ValueError(f"expected a checkpoint name or path, got {name_or_path!r}")
    path = Path(name_or_path)
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    elif len(path.parts) == 1:
        path = zoo_dir(directory) / path
    return path.with_name(path.name + ".json"), path.with_name(path.name + ".safetensors")


def available(directory: str | os.PathLike | None = None) -> list[str]:
    """Names of the complete checkpoints (both files present) in the zoo directory."""
    root = zoo_dir(directory)
    if not root.is_dir():
        return []
    return sorted(p.stem for p in root.glob("*.json") if p.with_suffix(".safetensors").is_file())


def _missing(path: Path) -> FileNotFoundError:
    names = available(path.parent)
    hint = f"available: {', '.join(names)}" if names else "no checkpoints there yet: its chapter trains and saves it"
    return FileNotFoundError(f"checkpoint file {path} not found ({hint})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value):
    """Tensors and numpy values -> python numbers/lists, so that metrics serialise to JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.tolist() if hasattr(value, "tolist") else value


def save(
    model: nn.Module,
    name_or_path: str | os.PathLike,
    config,
    metrics: dict | None = None,
    directory: str | os.PathLike | None = None,
) -> Path:
    """Write `model`'s weights and `config` (+ `metrics`) as a checkpoint; return the .safetensors path."""
    name = type(model).__name__
    if name not in _REGISTRY or _REGISTRY[name][0] is not type(model):
        raise ValueError(f"model class {name} is not registered with the zoo; decorate it with "
                         f"@register_model(config_cls=...) or call register({name}, ConfigClass) first")
    config_cls = _REGISTRY[name][1]
    if type(config) is not config_cls:
        raise TypeError(f"config for {name} must be a {config_cls.__name__}, got {type(config).__name__}")
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
    json_path, st_path = _paths(name_or_path, directory)
    # Own CPU copies: safetensors refuses non-contiguous tensors and tensors sharing memory (tied weights).
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    record = {
        "format_version": FORMAT_VERSION,
        "class": name,
        "config": dataclasses.asdict(config),
        "metrics": _plain(metrics or {}),
        "sha256": None,
        "tensors": {k: list(v.shape) for k, v in state.items()},
    }
    try:
        json.dumps(record)  # fail before writing anything
    except TypeError as err:
        raise TypeError(f"config and metrics must hold JSON values (numbers, strings, lists, dicts): {err}") from None
    st_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(st_path))
    record["sha256"] = _sha256(st_path)
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return st_path


def load_config(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict:
    """The checkpoint's JSON record (class, config, metrics, sha256, tensor shapes), parsed."""
    json_path, _ = _paths(name_or_path, directory)
    if not json_path.is_file():
        raise _missing(json_path)
    record = json.loads(json_path.read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {json_path} has format_version {record.get('format_version')!r}; "
                         f"this vitlib reads version {FORMAT_VERSION}")
    return record


def _build_config(config_cls: type, values: dict, where: Path):
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    missing, unknown = sorted(set(fields) - set(values)), sorted(set(values) - set(fields))
    if missing or unknown:
        raise ValueError(f"config in {where} does not match {config_cls.__name__}: "
                         f"missing keys {missing}, unknown keys {unknown}")
    # JSON has no tuples: give tuple-typed fields their tuples back.
    return config_cls(**{k: tuple(v) if isinstance(v, list) and "tuple" in str(fields[k].type).lower() else v
                         for k, v in values.items()})


def _check_tensors(model: nn.Module, state: dict[str, torch.Tensor], where: Path, show: int = 5) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"{k}: missing from the file (model expects {expected[k]})" for k in expected if k not in got]
    problems += [f"{k}: not in the model (file has {got[k]})" for k in got if k not in expected]
    problems += [f"{k}: shape mismatch, model expects {expected[k]}, file has {got[k]}"
                 for k in expected if k in got and expected[k] != got[k]]
    if problems:
        more = f"\n  ... and {len(problems) - show} more" if len(problems) > show else ""
        raise ValueError(f"checkpoint {where} does not fit {type(model).__name__}:\n  "
                         + "\n  ".join(problems[:show]) + more)


def load(
    name_or_path: str | os.PathLike,
    device: torch.device | str = "cpu",
    directory: str | os.PathLike | None = None,
) -> nn.Module:
    """Rebuild a checkpoint's model, verify its file hash, names and shapes, and return it in eval mode."""
    record = load_config(name_or_path, directory)
    _, st_path = _paths(name_or_path, directory)
    if not st_path.is_file():
        raise _missing(st_path)
    digest = _sha256(st_path)
    if digest != record["sha256"]:
        raise ValueError(f"checkpoint {st_path} was modified or corrupted: sha256 expected {record['sha256']}, "
                         f"got {digest}")
    name = record["class"]
    if name not in _REGISTRY:
        for module in MODEL_MODULES:
            importlib.import_module(module)
    if name not in _REGISTRY:
        raise ValueError(f"checkpoint {st_path} holds a {name}, which is not a registered model class "
                         f"(registered: {registered()}); import the module that defines it")
    cls, config_cls = _REGISTRY[name]
    model = cls(_build_config(config_cls, record["config"], st_path.with_suffix(".json")))
    state = load_file(str(st_path), device="cpu")
    _check_tensors(model, state, st_path)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def verify(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict:
    """Load the checkpoint (so every check runs) and return the metrics stored with it."""
    load(name_or_path, directory=directory)
    return load_config(name_or_path, directory)["metrics"]
