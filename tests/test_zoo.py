"""Tests of vitlib.zoo: safetensors + JSON checkpoints, integrity and shape checks (never writes to data/zoo)."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from vitlib import zoo


@dataclass
class TinyConfig:
    d_in: int = 3
    d_hidden: int = 5
    sizes: tuple = (1, 2)


@zoo.register_model(config_cls=TinyConfig)
class TinyNet(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.d_in, config.d_hidden)
        self.out = nn.Linear(config.d_hidden, 2)
        self.out.weight = nn.Parameter(self.out.weight.t().contiguous().t())  # a non-contiguous tensor
        self.register_buffer("scale", torch.ones(config.d_hidden))

    def forward(self, x):
        return self.out(torch.relu(self.inp(x)) * self.scale)


@dataclass
class TiedConfig:
    vocab: int = 7
    d: int = 4


class Tied(nn.Module):
    def __init__(self, config: TiedConfig):
        super().__init__()
        self.emb = nn.Embedding(config.vocab, config.d)
        self.head = nn.Linear(config.d, config.vocab, bias=False)
        self.head.weight = self.emb.weight  # weight tying, as in GPT


zoo.register(Tied, TiedConfig)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = TinyNet(TinyConfig())
    path = zoo.save(model, "tiny", TinyConfig(), metrics={"acc": torch.tensor(0.75)}, directory=tmp_path)
    return model, path


def test_round_trip_same_state_and_outputs(saved, tmp_path):
    model, path = saved
    assert path == tmp_path / "tiny.safetensors" and zoo.available(tmp_path) == ["tiny"]
    loaded = zoo.load("tiny", directory=tmp_path)
    assert isinstance(loaded, TinyNet) and not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(4, 3)
    assert torch.equal(model(x), loaded(x))
    assert zoo.verify("tiny", directory=tmp_path) == {"acc": 0.75}
    assert zoo.load(path).__class__ is TinyNet  # a path works as well as a name


def test_json_record(saved, tmp_path):
    record = json.loads((tmp_path / "tiny.json").read_text())
    assert record["class"] == "test_zoo.TinyNet" and record["format_version"] == zoo.FORMAT_VERSION
    assert record["config"] == {"d_in": 3, "d_hidden": 5, "sizes": [1, 2]}
    assert record["tensors"]["inp.weight"] == [5, 3] and "scale" in record["tensors"]
    assert len(record["sha256"]) == 64 and record["metrics"] == {"acc": 0.75}
    assert zoo.load_config("tiny", directory=tmp_path) == record


def test_tuple_fields_come_back_as_tuples(saved, tmp_path):
    assert zoo.load("tiny", directory=tmp_path).config == TinyConfig()  # JSON stores (1, 2) as a list


def test_env_var_sets_default_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("VITLIB_ZOO", str(tmp_path / "zoo"))
    zoo.save(TinyNet(TinyConfig()), "envtiny", TinyConfig())
    assert (tmp_path / "zoo" / "envtiny.json").is_file() and zoo.available() == ["envtiny"]
    monkeypatch.delenv("VITLIB_ZOO")
    assert zoo.zoo_dir().parts[-2:] == ("data", "zoo")


def test_tied_weights_save_and_load(tmp_path):
    model = Tied(TiedConfig())
    zoo.save(model, "tied", TiedConfig(), directory=tmp_path)
    loaded = zoo.load("tied", directory=tmp_path)
    assert torch.equal(loaded.head.weight, model.emb.weight) and loaded.head.weight is loaded.emb.weight


def test_tampered_file_is_rejected(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified or corrupted: sha256 expected"):
        zoo.load("tiny", directory=tmp_path)


def edit_record(tmp_path, change):
    json_path = tmp_path / "tiny.json"
    record = json.loads(json_path.read_text())
    change(record)
    json_path.write_text(json.dumps(record))


def test_wrong_config_keys_are_named(saved, tmp_path):
    edit_record(tmp_path, lambda r: r["config"].update(n_layers=2))
    with pytest.raises(ValueError, match=r"unknown keys \['n_layers'\]"):
        zoo.load("tiny", directory=tmp_path)
    edit_record(tmp_path, lambda r: (r["config"].pop("n_layers"), r["config"].pop("d_hidden")))
    with pytest.raises(ValueError, match=r"missing keys \['d_hidden'\]"):
        zoo.load("tiny", directory=tmp_path)


def test_shape_mismatch_names_tensor_and_shapes(saved, tmp_path):
    edit_record(tmp_path, lambda r: r["config"].update(d_hidden=6))
    with pytest.raises(ValueError, match=r"inp.weight: shape mismatch, model expects \(6, 3\), file has \(5, 3\)"):
        zoo.load("tiny", directory=tmp_path)


def test_unknown_class(saved, tmp_path):
    edit_record(tmp_path, lambda r: r.update({"class": "Mystery"}))
    with pytest.raises(ValueError, match="Mystery.*not a registered.*TinyNet"):
        zoo.load("tiny", directory=tmp_path)
    edit_record(tmp_path, lambda r: r.update({"class": "vitlib.nowhere.Model"}))
    with pytest.raises(ValueError, match="vitlib.nowhere.Model.*not a registered"):
        zoo.load("tiny", directory=tmp_path)


def test_missing_checkpoint_lists_available(saved, tmp_path):
    with pytest.raises(FileNotFoundError, match="available: tiny"):
        zoo.load("nope", directory=tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        zoo.load("nope", directory=tmp_path / "empty")
    (tmp_path / "tiny.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="tiny.safetensors"):
        zoo.load("tiny", directory=tmp_path)


def test_save_rejects_unregistered_model_and_wrong_config(tmp_path):
    with pytest.raises(ValueError, match="not registered"):
        zoo.save(nn.Linear(2, 2), "lin", TinyConfig(), directory=tmp_path)
    with pytest.raises(TypeError, match="must be a TinyConfig, got TiedConfig"):
        zoo.save(TinyNet(TinyConfig()), "tiny", TiedConfig(), directory=tmp_path)
    with pytest.raises(TypeError, match="config_cls must be a dataclass"):
        zoo.register(TinyNet, dict)
    assert {"test_zoo.TinyNet", "test_zoo.Tied"} <= set(zoo.registered())


def test_load_imports_the_module_that_defines_the_model():
    code = ("import sys; from vitlib import zoo; assert 'vitlib.transformer' not in sys.modules; "
            "m = zoo.load('gpt-shapes'); print(type(m).__module__, m.training)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["vitlib.transformer", "False"]


def test_load_never_imports_a_module_outside_vitlib(saved, tmp_path):
    edit_record(tmp_path, lambda r: r.update({"class": "antigravity.Model"}))
    with pytest.raises(ValueError, match="antigravity.Model.*not a registered"):
        zoo.load("tiny", directory=tmp_path)
    assert "antigravity" not in sys.modules


def test_save_refuses_to_overwrite(saved, tmp_path):
    model, path = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save(TinyNet(TinyConfig()), "tiny", TinyConfig(), directory=tmp_path)
    assert path.read_bytes() == before
    zoo.save(TinyNet(TinyConfig()), "tiny", TinyConfig(), metrics={"acc": 0.5}, directory=tmp_path, overwrite=True)
    assert zoo.verify("tiny", directory=tmp_path) == {"acc": 0.5}


def test_shapes_are_checked_before_the_model_is_built(saved, tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(TinyNet, "__init__", lambda self, config, init=TinyNet.__init__: (
        built.append(torch.empty(0).device.type), init(self, config))[1])
    edit_record(tmp_path, lambda r: r["config"].update(d_hidden=1_000_000, d_in=100_000))
    with pytest.raises(ValueError, match=r"inp.weight: shape mismatch, model expects \(1000000, 100000\)"):
        zoo.load("tiny", directory=tmp_path)
    assert built == ["meta"], "the 400 GB model was built for real before its shapes were checked"


def test_dtype_mismatch_is_named(tmp_path):
    model = TinyNet(TinyConfig()).half()
    zoo.save(model, "half", TinyConfig(), directory=tmp_path)
    with pytest.raises(ValueError, match=r"inp.weight: dtype mismatch, model expects torch.float32, file has torch.float16"):
        zoo.load("half", directory=tmp_path)


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "format_version None"),
    (json.dumps({"format_version": 2, "class": "x", "config": [], "extras": {}, "metrics": {}, "sha256": "0",
                 "tensors": {}}), r"malformed: config \(expected dict, got list\)"),
])
def test_malformed_records_are_named(saved, tmp_path, text, match):
    (tmp_path / "tiny.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        zoo.load("tiny", directory=tmp_path)


def test_a_file_that_is_not_safetensors(saved, tmp_path):
    _, path = saved
    path.write_bytes(b"\xff" * 64)
    edit_record(tmp_path, lambda r: r.update(sha256=zoo._sha256(path)))
    with pytest.raises(ValueError, match="not a safetensors file"):
        zoo.load("tiny", directory=tmp_path)


def test_a_device_this_machine_lacks_fails_first(saved, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="cuda"):
        zoo.load("tiny", device="cuda", directory=tmp_path)


@dataclass
class ScheduleConfig:
    steps: int = 10
    betas: tuple = (0.1, 0.2)


@dataclass
class OuterConfig:
    inner: TinyConfig = None
    scale: float = 1.0


@zoo.register_model(config_cls=OuterConfig)
class Outer(nn.Module):
    def __init__(self, config: OuterConfig):
        super().__init__()
        self.config = config
        self.inner = TinyNet(config.inner)


def test_nested_configs_and_extras_come_back(tmp_path, monkeypatch):
    config = OuterConfig(inner=TinyConfig(d_hidden=7, sizes=(3, 4)), scale=2.0)
    zoo.save(Outer(config), "outer", config, directory=tmp_path, extras={"schedule": ScheduleConfig(steps=5)})
    loaded = zoo.load("outer", directory=tmp_path)
    assert loaded.config == config and isinstance(loaded.config.inner, TinyConfig)
    record = zoo.load_config("outer", directory=tmp_path)
    assert record["extras"]["schedule"] == {"class": "test_zoo.ScheduleConfig", "config": {"steps": 5, "betas": [0.1, 0.2]}}
    with pytest.raises(ValueError, match="not a vitlib dataclass"):  # extras are rebuilt from vitlib's classes only
        zoo.load_extras("outer", directory=tmp_path)
    with pytest.raises(TypeError, match="must be a dataclass instance"):
        zoo.save(Outer(config), "outer2", config, directory=tmp_path, extras={"schedule": {"steps": 5}})


def test_extras_of_vitlib_dataclasses_are_rebuilt(tmp_path):
    from vitlib.transformer import GPTConfig

    zoo.save(TinyNet(TinyConfig()), "withextra", TinyConfig(), directory=tmp_path,
             extras={"lm": GPTConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_len=4)})
    assert zoo.load_extras("withextra", directory=tmp_path)["lm"] == GPTConfig(vocab_size=8, d_model=8, n_layers=1,
                                                                                n_heads=2, max_len=4)
