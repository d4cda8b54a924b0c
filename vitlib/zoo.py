"""Course checkpoints: weights as safetensors, configuration as JSON; nothing is unpickled (chapter 00).

A checkpoint `name` is two files side by side in the zoo directory: `name.safetensors` (the state_dict)
and `name.json` (`{"format_version", "class", "config", "extras", "metrics", "sha256", "tensors"}`).
A model class is known to the zoo once registered, by where it lives (`"vitlib.clip.CLIP"`), and must be
buildable as `cls(config)` from its config dataclass:

    @register_model(config_cls=GPTConfig)      # or: register(GPT, GPTConfig)
    class GPT(nn.Module):
        def __init__(self, config: GPTConfig): ...

`load` imports the module a checkpoint names when it is part of vitlib (and never anything else), so
`zoo.load("clip-shapes")` works without importing `vitlib.clip` first. Configs may nest dataclasses
(a VLM's vision config inside its own), and `extras` keeps state that is no module's (a noise schedule's
config, say) as dataclasses of its own. Before any weight is allocated, the file's tensor names, shapes
and dtypes are checked against the model as built on the meta device.

The zoo directory is the repository's `data/zoo/`, or `$VITLIB_ZOO` when set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import struct
import typing
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .utils import get_device

__all__ = ["register", "register_model", "registered", "save", "load", "load_extras", "load_config", "available",
           "verify", "zoo_dir"]

FORMAT_VERSION = 2
_REGISTRY: dict[str, tuple[type[nn.Module], type]] = {}   # "module.Class" -> (class, config class)
_LOADABLE = re.compile(r"^vitlib(\.[A-Za-z_]\w*)+$")         # the modules `load` may import
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_dataclass(config_cls, what: str) -> None:
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise TypeError(f"{what} must be a dataclass, got {config_cls!r}")


def register(cls: type[nn.Module], config_cls: type) -> type[nn.Module]:
    """Make `cls` loadable; `cls(config_cls(...))` must build the model. Returns `cls`.

    Re-running a notebook cell that defines the class replaces the earlier definition (same path)."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register expects an nn.Module subclass, got {cls!r}")
    _check_dataclass(config_cls, "config_cls")
    _REGISTRY[class_path(cls)] = (cls, config_cls)
    return cls


def register_model(*, config_cls: type):
    """Class decorator form of `register`: `@register_model(config_cls=MyConfig)`."""
    return lambda cls: register(cls, config_cls)


def registered() -> list[str]:
    """Where the registered model classes live ("vitlib.clip.CLIP", ...)."""
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


def _describe_extra(name: str, value) -> dict:
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"extras[{name!r}] must be a dataclass instance, got {type(value).__name__}")
    return {"class": class_path(type(value)), "config": dataclasses.asdict(value)}


def save(model: nn.Module, name_or_path: str | os.PathLike, config, metrics: dict | None = None,
         directory: str | os.PathLike | None = None, extras: dict | None = None, overwrite: bool = False) -> Path:
    """Write `model`'s weights, `config`, `extras` (dataclasses) and `metrics` as a checkpoint.

    Refuses to replace an existing checkpoint unless `overwrite=True`. Returns the .safetensors path."""
    where = class_path(type(model))
    if _REGISTRY.get(where, (None,))[0] is not type(model):
        name = type(model).__name__
        raise ValueError(f"model class {name} is not registered with the zoo; decorate it with "
                         f"@register_model(config_cls=...) or call register({name}, ConfigClass) first")
    config_cls = _REGISTRY[where][1]
    if type(config) is not config_cls:
        raise TypeError(f"config for {type(model).__name__} must be a {config_cls.__name__}, got {type(config).__name__}")
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
    if extras is not None and not isinstance(extras, dict):
        raise TypeError(f"extras must be a dict of dataclasses or None, got {type(extras).__name__}")
    json_path, st_path = _paths(name_or_path, directory)
    if not overwrite and (json_path.exists() or st_path.exists()):
        raise FileExistsError(f"checkpoint {st_path.with_suffix('')} exists; pass overwrite=True to replace it")
    # Own CPU copies: safetensors refuses non-contiguous tensors and tensors sharing memory (tied weights).
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    record = {
        "format_version": FORMAT_VERSION,
        "class": where,
        "config": dataclasses.asdict(config),
        "extras": {k: _describe_extra(k, v) for k, v in (extras or {}).items()},
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
    """The checkpoint's JSON record (class, config, extras, metrics, sha256, tensor shapes), parsed and checked."""
    json_path, _ = _paths(name_or_path, directory)
    if not json_path.is_file():
        raise _missing(json_path)
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint record {json_path} is not valid JSON: {err}") from None
    if not isinstance(record, dict) or record.get("format_version") != FORMAT_VERSION:
        version = record.get("format_version") if isinstance(record, dict) else None
        raise ValueError(f"checkpoint {json_path} has format_version {version!r}; this vitlib reads "
                         f"version {FORMAT_VERSION}")
    expected = {"class": str, "config": dict, "extras": dict, "metrics": dict, "sha256": str, "tensors": dict}
    wrong = [f"{k} (expected {t.__name__}, got {type(record.get(k)).__name__})"
             for k, t in expected.items() if not isinstance(record.get(k), t)]
    if wrong:
        raise ValueError(f"checkpoint record {json_path} is malformed: {', '.join(wrong)}")
    return record


def _resolve(where: str, json_path: Path) -> tuple[type[nn.Module], type]:
    """The registered class a record names, importing its module only when it is part of vitlib."""
    if where not in _REGISTRY and _LOADABLE.match(where.rpartition(".")[0]):
        try:
            importlib.import_module(where.rpartition(".")[0])
        except ImportError:
            pass  # reported below, with what is registered
    if where not in _REGISTRY:
        raise ValueError(f"checkpoint {json_path} holds a {where}, which is not a registered model class "
                         f"(registered: {registered()}); import the module that defines it")
    return _REGISTRY[where]


def _build_config(config_cls: type, values, where: Path):
    """`config_cls(**values)`, rebuilding nested dataclasses and the tuples JSON turned into lists."""
    if not isinstance(values, dict):
        raise ValueError(f"config in {where} for {config_cls.__name__} must be a JSON object, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    missing, unknown = sorted(set(fields) - set(values)), sorted(set(values) - set(fields))
    if missing or unknown:
        raise ValueError(f"config in {where} does not match {config_cls.__name__}: "
                         f"missing keys {missing}, unknown keys {unknown}")
    hints = typing.get_type_hints(config_cls)
    built = {}
    for name, value in values.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint):
            value = _build_config(hint, value, where)
        elif isinstance(value, list) and (typing.get_origin(hint) is tuple or hint is tuple):
            value = tuple(value)
        built[name] = value
    return config_cls(**built)


def _file_tensors(st_path: Path) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """Names, dtypes and shapes from a safetensors header, read without loading any tensor."""
    with open(st_path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(100_000_000, st_path.stat().st_size - 8):
            raise ValueError(f"checkpoint {st_path} is not a safetensors file (header length {n})")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    try:
        return {k: (_DTYPES[v["dtype"]], tuple(v["shape"])) for k, v in header.items()}
    except (KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {st_path} has a malformed safetensors header ({err!r})") from None


def _check_tensors(expected: dict[str, torch.Tensor], got: dict, where: Path, model_name: str, show: int = 5) -> None:
    problems = [f"{k}: missing from the file (model expects {tuple(v.shape)})" for k, v in expected.items()
                if k not in got]
    problems += [f"{k}: not in the model (file has {got[k][1]})" for k in got if k not in expected]
    for k, v in expected.items():
        if k in got and tuple(v.shape) != got[k][1]:
            problems.append(f"{k}: shape mismatch, model expects {tuple(v.shape)}, file has {got[k][1]}")
        elif k in got and v.dtype != got[k][0]:
            problems.append(f"{k}: dtype mismatch, model expects {v.dtype}, file has {got[k][0]}")
    if problems:
        more = f"\n  ... and {len(problems) - show} more" if len(problems) > show else ""
        raise ValueError(f"checkpoint {where} does not fit {model_name}:\n  " + "\n  ".join(problems[:show]) + more)


def load(name_or_path: str | os.PathLike, device: torch.device | str = "cpu",
         directory: str | os.PathLike | None = None) -> nn.Module:
    """Rebuild a checkpoint's model, verify its file hash, names, shapes and dtypes, and return it in eval mode."""
    device = get_device(prefer=device)  # a device this machine lacks fails here, before any work
    record = load_config(name_or_path, directory)
    json_path, st_path = _paths(name_or_path, directory)
    if not st_path.is_file():
        raise _missing(st_path)
    digest = _sha256(st_path)
    if digest != record["sha256"]:
        raise ValueError(f"checkpoint {st_path} was modified or corrupted: sha256 expected {record['sha256']}, "
                         f"got {digest}")
    cls, config_cls = _resolve(record["class"], json_path)
    config = _build_config(config_cls, record["config"], json_path)
    with torch.device("meta"):  # shapes and dtypes without allocating a byte
        expected = cls(config).state_dict()
    _check_tensors(expected, _file_tensors(st_path), st_path, cls.__name__)
    model = cls(config)
    model.load_state_dict(load_file(str(st_path), device="cpu"), strict=True)
    return model.to(device).eval()


def load_extras(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict:
    """The checkpoint's extras (state that is no module's), rebuilt as the dataclasses they were saved as."""
    record = load_config(name_or_path, directory)
    json_path, _ = _paths(name_or_path, directory)
    extras = {}
    for key, item in record["extras"].items():
        where = item.get("class", "") if isinstance(item, dict) else ""
        module, _, name = where.rpartition(".")
        if not _LOADABLE.match(module):
            raise ValueError(f"extras[{key!r}] in {json_path} names {where!r}, which is not a vitlib dataclass")
        config_cls = getattr(importlib.import_module(module), name, None)
        _check_dataclass(config_cls, f"extras[{key!r}] class {where}")
        extras[key] = _build_config(config_cls, item.get("config"), json_path)
    return extras


def verify(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict:
    """Load the checkpoint (so every check runs) and return the metrics stored with it."""
    load(name_or_path, directory=directory)
    load_extras(name_or_path, directory=directory)
    return load_config(name_or_path, directory)["metrics"]
