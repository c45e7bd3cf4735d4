"""The core install: the wheel, installed with no extras into a fresh venv, runs the lightning op and names each
missing extra in one line.

The fresh venv sees only the core dependencies (torch, numpy, safetensors, rich) and what they need in turn: their
distributions are linked from this environment into the new venv (no download, no 5 GB copy of torch), so any
import of an optional package from the core paths fails here as it would for a user.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import lumos

ROOT = Path(__file__).resolve().parents[1]
CORE = ("torch", "numpy", "safetensors", "rich")
SYSTEMS = {"lumos.rl": "rl", "lumos.valuation": "valuation", "lumos.explain": "vision", "lumos.vision": "vision"}

pytestmark = pytest.mark.slow


def _closure(names: tuple[str, ...]) -> dict[str, md.Distribution]:
    """The installed distributions ``names`` need, transitively (markers evaluated, extras not followed)."""
    from packaging.requirements import Requirement

    out: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        key = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if key in out:
            continue
        try:
            dist = md.distribution(key)
        except md.PackageNotFoundError:
            continue  # an optional or platform-excluded dependency that is not installed here
        out[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return out


def _link(dist: md.Distribution, site: Path) -> None:
    """Symlink the top-level files and folders of ``dist`` (code and its .dist-info) into ``site``."""
    base = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for top in tops:
        src, dst = base / top, site / top
        if src.exists() and not dst.exists() and top != "__pycache__" and not top.endswith(".pth"):
            dst.symlink_to(src)


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, cwd=tmp)
    wheel = next(wheels.glob("lumos-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    for dist in _closure(CORE).values():
        _link(dist, site)
    # pip itself runs from this environment, installing into the fresh venv's site-packages, without dependencies.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return py


def _run(py: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=py.parent, timeout=300)


def test_wheel_declares_only_the_core(core_venv: Path) -> None:
    out = _run(core_venv, "import importlib.metadata as md; print('\\n'.join(md.requires('lumos') or []))")
    assert out.returncode == 0, out.stderr
    core = [r for r in out.stdout.splitlines() if r and "extra ==" not in r]
    assert sorted(re.split(r"[<>=!~ ;\[]", r)[0] for r in core) == sorted(CORE)


def test_core_install_runs_the_lightning_op_and_a_model(core_venv: Path) -> None:
    code = (
        "import torch, lumos\n"
        "from lumos.ops import lightning_attention\n"
        "from lumos.ops.lightning.naive import naive_lightning_attention\n"
        "torch.manual_seed(0)\n"
        "q, k, v = (torch.randn(1, 2, 17, 8) for _ in range(3))\n"
        "s = torch.tensor([0.1, 0.5])\n"
        "o, _ = lightning_attention(q, k, v, s)\n"
        "r, _ = naive_lightning_attention(q, k, v, s)\n"
        "assert torch.allclose(o, r, atol=1e-5), (o - r).abs().max()\n"
        "from lumos.models import tiny_hybrid, generate\n"
        "m = tiny_hybrid()\n"
        "out = generate(m, torch.tensor([[1, 2, 3]]), max_new_tokens=3)\n"
        "import sys; assert 'sklearn' not in sys.modules and 'transformers' not in sys.modules\n"
        "print(lumos.__version__)\n"
    )
    out = _run(core_venv, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == lumos.__version__


def test_each_system_names_its_extra(core_venv: Path) -> None:
    code = (
        "import importlib\n"
        f"for name in {sorted(SYSTEMS)!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as exc:\n"
        "        print(name, '|', exc)\n"
        "    else:\n"
        "        print(name, '|', 'imported')\n"
    )
    out = _run(core_venv, code)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" | ", 1) for line in out.stdout.strip().splitlines())
    for system, extra in SYSTEMS.items():
        msg = lines[system]
        assert f"{system} needs the '{extra}' extra" in msg and f"pip install 'lumos[{extra}]'" in msg, msg
        assert "\n" not in msg


def test_cli_in_core_install(core_venv: Path) -> None:
    lumos_cli = "from lumos.cli.main import main; import sys; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    version = subprocess.run([str(core_venv), "-c", lumos_cli, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"lumos {lumos.__version__}", version.stderr
    rl = subprocess.run([str(core_venv), "-c", lumos_cli, "rl", "train"], capture_output=True, text=True, env=env)
    assert rl.returncode == 2
    assert rl.stderr.count("\n") == 1 and "pip install 'lumos[rl]'" in rl.stderr, rl.stderr


def test_version_is_written_once() -> None:
    assert 'version = "' not in (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{lumos.__version__}]" in changelog
    assert sysconfig.get_paths()  # the interpreter is a normal CPython
