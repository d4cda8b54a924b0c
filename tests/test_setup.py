"""The set-up that `make book` and `make test` run first (.ci/setup_venv.py) and the Binder configuration.

What a machine gets is decided by pure functions, tested here for machines this one is not: a CPU-only
Linux laptop gets PyTorch's CPU wheel index, the book gets no torch at all, and a torch that the host
Python already has is reused rather than downloaded again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("setup_venv", ROOT / ".ci" / "setup_venv.py")
setup_venv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_venv)

PIP = ["python", "-m", "pip"]


def never_asked():
    raise AssertionError("the CPU index was probed where PyPI's torch is already the right build")


def test_cpu_only_linux_gets_pytorchs_cpu_index():
    (command,) = setup_venv.torch_commands(PIP, "Linux", nvidia=False, index_reachable=lambda: True)
    assert command[command.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert setup_venv.TORCH in command


def test_unreachable_cpu_index_falls_back_to_pypi_in_one_line(capsys):
    (command,) = setup_venv.torch_commands(PIP, "Linux", nvidia=False, index_reachable=lambda: False)
    assert "--index-url" not in command and setup_venv.TORCH in command
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "cannot be reached" in said[0] and "PyPI" in said[0]


@pytest.mark.parametrize("system, nvidia", [("Linux", True), ("Darwin", False), ("Windows", False)])
def test_other_machines_get_pypis_torch(system, nvidia):
    (command,) = setup_venv.torch_commands(PIP, system, nvidia=nvidia, index_reachable=never_asked)
    assert "--index-url" not in command and setup_venv.TORCH in command


def test_pip_cannot_stall_on_an_unreachable_index():
    (command,) = setup_venv.torch_commands(PIP, "Linux", nvidia=False, index_reachable=lambda: True)
    retries, timeout = int(command[command.index("--retries") + 1]), int(command[command.index("--timeout") + 1])
    assert (retries + 1) * timeout <= 120, "pip could wait minutes on an index that does not answer"


def test_reachable_is_false_for_an_address_that_does_not_resolve():
    assert setup_venv.reachable("https://pytorch-index.invalid/whl/cpu", timeout=2) is False


def dry_run(stage: str, tmp_path: Path, capsys) -> str:
    setup_venv.main([stage, "--dry-run", "--venv", str(tmp_path / "venv")])
    return capsys.readouterr().out


def test_make_book_installs_no_torch(tmp_path, capsys):
    out = dry_run("book", tmp_path, capsys)
    installs = [line for line in out.splitlines() if " install " in line]
    assert installs and all("-r book/requirements.txt" in line for line in installs), out
    assert "torch" not in out.lower() and " -e " not in out
    book_requirements = (ROOT / "book" / "requirements.txt").read_text(encoding="utf-8")
    names = [re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower()
             for line in book_requirements.splitlines() if line.strip() and not line.startswith(("#", "-"))]
    assert "jupyter-book" in names
    assert not {"torch", "vitlib", "transformers", "diffusers"} & set(names), names


def test_make_test_installs_the_course(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(setup_venv, "host_torch", lambda python: None)
    monkeypatch.setattr(setup_venv, "reachable", lambda url, timeout=5.0: False)
    out = dry_run("test", tmp_path, capsys)
    assert "-r requirements.txt -e ." in out and "torch==" in out


def test_the_makefile_sets_up_each_target_for_its_stage():
    for target, stage in [("book", "book"), ("test", "test")]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # also when run by `make test`
        run = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=ROOT, capture_output=True,
                             text=True, check=True, env=env)
        first = run.stdout.splitlines()[0]
        assert re.search(rf"\.ci/setup_venv\.py --venv \S+ {stage}$", first), first


def test_an_old_venv_with_system_site_packages_is_made_anew(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\n")
    assert not setup_venv.isolated_venv_exists(venv)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    assert setup_venv.isolated_venv_exists(venv)


def fake_distribution(site: Path, name: str, version: str, requires: list[str], files: list[str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(meta) + "\n")
    record = files + [f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in record))
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_text(f"VERSION = {version!r}\n" if f.endswith("__init__.py") else "")


def test_a_host_torch_is_reused_with_what_it_needs_and_nothing_else(tmp_path):
    host_site = tmp_path / "host-site"
    fake_distribution(host_site, "torch", "9.9.9", ["mpdep>=1", "gpuonly; extra == 'cuda'"],
                      ["torch/__init__.py", "torch/lib/core.so", "../../bin/torchrun"])
    fake_distribution(host_site, "mpdep", "1.0", [], ["mpdep.py"])
    fake_distribution(host_site, "unrelated", "2.0", [], ["unrelated/__init__.py"])
    probe = subprocess.run([sys.executable, "-c", setup_venv.HOST_TORCH_PROBE], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(host_site)), check=True)
    found = json.loads(probe.stdout)
    assert found["version"] == "9.9.9"
    assert sorted(Path(e).name for e in found["entries"]) == sorted(
        ["torch", "torch-9.9.9.dist-info", "mpdep.py", "mpdep-1.0.dist-info"])

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    setup_venv.reuse_host_torch(venv, found)
    check = subprocess.run([str(setup_venv.venv_python(venv)), "-c",
                            "import importlib.util as u, torch, mpdep; print(torch.VERSION, u.find_spec('unrelated'))"],
                           capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    assert check.stdout.split() == ["9.9.9", "None"], check.stderr


def test_host_torch_is_none_without_torch(tmp_path):
    empty = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(empty)], check=True)
    assert setup_venv.host_torch(str(setup_venv.venv_python(empty))) is None


def test_binder_installs_cpu_torch_the_course_and_vitlib():
    requirements = (ROOT / ".binder" / "requirements.txt").read_text(encoding="utf-8")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert re.search(r"^torch==[\d.]+\+cpu$", requirements, flags=re.M)
    assert "-r ../requirements.txt" in requirements.splitlines()
    post_build = ROOT / ".binder" / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert re.search(r"pip install --no-deps -e \.$", post_build.read_text(encoding="utf-8"), flags=re.M)


def test_torch_is_not_pinned_where_colab_would_reinstall_it():
    for name in ["requirements.txt", "pyproject.toml"]:
        text = (ROOT / name).read_text(encoding="utf-8")
        (spec_line,) = re.findall(r"^\s*\"?torch(?![\w-])([^\"\n,#]*)", text, flags=re.M)   # not torchmetrics
        assert spec_line.strip().startswith(">="), f"{name} pins torch as {spec_line!r}: Colab would reinstall it"
