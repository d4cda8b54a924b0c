"""Set up the course's virtual environment: what `make book` and `make test` run first.

    python3 .ci/setup_venv.py book   # only what builds the book (book/requirements.txt): no PyTorch
    python3 .ci/setup_venv.py test   # the course, its tests and PyTorch

The environment is isolated from the packages installed on the system (their pytest plugins and
versions would leak into the tests). PyTorch is chosen once, in this order:
1. a torch the environment already has is kept;
2. a torch the Python running this script already has (a conda or system install) is reused by
   linking it, and the packages it needs, into the environment instead of downloading it again;
3. on Linux without an NVIDIA GPU, the CPU build from PyTorch's CPU wheel index (about 200 MB,
   where PyPI's Linux torch is the 2.7 GB CUDA build); if that index cannot be reached, PyPI's torch,
   said in one line;
4. elsewhere (an NVIDIA GPU, macOS, Windows), PyPI's torch.
Each stage leaves a stamp in the environment holding a hash of its requirement files, so a later run
installs nothing unless they changed. `--dry-run` prints the commands instead of running them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
STAGES = {"book": ["book/requirements.txt"], "test": ["requirements.txt", "pyproject.toml"]}
# pip's defaults (5 retries with back-off, 15 s or more a try) can stall an unreachable index for minutes.
PIP_NETWORK = ["--retries", "2", "--timeout", "30"]


def say(message: str) -> None:
    print(f"[set-up] {message}", flush=True)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def stamp_path(venv: Path, stage: str) -> Path:
    return venv / f".installed-{stage}"


def requirements_hash(stage: str) -> str:
    digest = hashlib.sha256()
    for name in STAGES[stage]:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def torch_commands(pip: list[str], system: str, nvidia: bool, index_reachable) -> list[list[str]]:
    """The commands that install torch on a machine without one; `index_reachable()` is asked only on
    Linux without an NVIDIA GPU, the one case where PyPI's torch is not the build the machine needs."""
    pypi = pip + ["install", *PIP_NETWORK, TORCH]
    if system != "Linux" or nvidia:
        return [pypi]
    if index_reachable():
        return [pip + ["install", *PIP_NETWORK, "--index-url", CPU_INDEX, TORCH]]
    say(f"PyTorch's CPU wheel index ({CPU_INDEX}) cannot be reached: installing {TORCH} from PyPI "
        "instead (on Linux that is the CUDA build, about 2.7 GB)")
    return [pypi]


# The host's torch, its requirement closure and the top-level files of each, as JSON (run by the host Python).
HOST_TORCH_PROBE = r"""
import importlib.metadata as md, json, re
def closure(name, seen):
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return
    seen[key] = dist
    for req in dist.requires or []:
        if "extra ==" not in req:
            closure(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0], seen)
seen = {}
closure("torch", seen)
entries = set()
for dist in seen.values():
    for f in dist.files or []:
        top = f.parts[0]
        if top != ".." and not top.endswith(".pth") and top != "__pycache__":
            entries.add(str(dist.locate_file(top)))
print(json.dumps({"version": seen["torch"].version if "torch" in seen else None, "entries": sorted(entries)}))
"""


def host_torch(python: str) -> dict | None:
    """{'version', 'entries'} of the torch the given interpreter can import, or None."""
    run = subprocess.run([python, "-c", HOST_TORCH_PROBE], capture_output=True, text=True)
    if run.returncode != 0:
        return None
    found = json.loads(run.stdout)
    return found if found["version"] else None


def link_host_torch(venv: Path, found: dict) -> tuple[Path, Path]:
    """Make the host's torch (and only the packages it needs) importable in the environment.

    The links sit in one folder that a .pth file appends to sys.path, after the environment's own
    site-packages, so a package installed into the environment still wins."""
    folder = venv / "host-torch"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for entry in map(Path, found["entries"]):
        if entry.exists():
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    python = venv_python(venv)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pth = Path(site) / "course-host-torch.pth"
    pth.write_text(f"{folder}\n", encoding="utf-8")
    return folder, pth


def reuse_host_torch(venv: Path, found: dict) -> bool:
    """Link the host's torch in; keep the links only if the environment can then import it."""
    folder, pth = link_host_torch(venv, found)
    if subprocess.run([str(venv_python(venv)), "-c", "import torch"], capture_output=True).returncode == 0:
        return True
    say(f"the torch {found['version']} of {sys.executable} does not import in {venv}: installing one instead")
    shutil.rmtree(folder)
    pth.unlink()
    return False


def isolated_venv_exists(venv: Path) -> bool:
    cfg = venv / "pyvenv.cfg"
    if not (cfg.exists() and venv_python(venv).exists()):
        return False
    return "include-system-site-packages = true" not in cfg.read_text(encoding="utf-8").lower()


def create_venv(venv: Path, run) -> None:
    if venv.exists():
        say(f"{venv} was made with system site-packages (or is broken): making it anew")
        shutil.rmtree(venv)
    say(f"creating the virtual environment {venv} with Python {platform.python_version()}")
    try:
        run([sys.executable, "-m", "venv", str(venv)])
    except subprocess.CalledProcessError:
        sys.exit("[set-up] could not create a virtual environment: Python's venv module (with ensurepip) is "
                 "missing. On Debian or Ubuntu: sudo apt install python3-venv (or python3.X-venv)")


def plan(stage: str, venv: Path, run, dry_run: bool = False) -> None:
    if not isolated_venv_exists(venv):
        if dry_run:
            say(f"would create {venv}")
        else:
            create_venv(venv, run)
    pip = [str(venv_python(venv)), "-m", "pip"]
    if stage == "test" and (dry_run or subprocess.run([str(venv_python(venv)), "-c", "import torch"],
                                                      capture_output=True).returncode != 0):
        found = host_torch(sys.executable)
        if found and (dry_run or reuse_host_torch(venv, found)):
            say(f"reusing the torch {found['version']} of {sys.executable} (linked, not copied)")
        else:
            say("installing PyTorch (first time only)")
            for command in torch_commands(pip, platform.system(), has_nvidia_gpu(), lambda: reachable(CPU_INDEX)):
                run(command)
    say(f"installing {STAGES[stage][0]} (first time: a few minutes)")
    if stage == "book":
        run(pip + ["install", "-q", *PIP_NETWORK, "-r", "book/requirements.txt"])
    else:
        run(pip + ["install", "-q", *PIP_NETWORK, "-r", "requirements.txt", "-e", "."])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--venv", default=".venv", type=Path)
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):
        sys.exit(f"[set-up] the course needs Python 3.10 or newer; {sys.executable} is {platform.python_version()}")
    os.chdir(ROOT)
    venv = args.venv if args.venv.is_absolute() else ROOT / args.venv
    stamp = stamp_path(venv, args.stage)
    if not args.dry_run and isolated_venv_exists(venv) and stamp.exists() \
            and stamp.read_text() == requirements_hash(args.stage):
        return

    def run(command):
        if args.dry_run:
            print(" ".join(command))
        else:
            subprocess.run(command, check=True)

    plan(args.stage, venv, run, args.dry_run)
    if not args.dry_run:
        stamp.write_text(requirements_hash(args.stage))
        say("done")


if __name__ == "__main__":
    main()
