"""Packaging: the standard-library ``platform`` is not shadowed; the layering rule holds."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_stdlib_platform_works_from_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system())"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in {"Linux", "Darwin", "Windows"}
    assert not (REPO / "platform" / "__init__.py").exists()


def test_torch_and_ray_import_from_repo_root() -> None:
    code = "import torch, ray, platform; print(platform.machine())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_platform_never_imports_agents_or_scenarios() -> None:
    offenders = []
    for path in (REPO / "platform").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith(("neurocomm.agents", "neurocomm.scenarios")):
                    offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert not offenders, offenders


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "neurocomm"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "validate" in out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from this checkout (offline: this environment's setuptools)."""
    out_dir = tmp_path_factory.mktemp("wheel")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-w", str(out_dir), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (built,) = out_dir.glob("neurocomm-*.whl")
    return built


def test_wheel_ships_py_typed(wheel: Path) -> None:
    """A type checker sees the packages' annotations (PEP 561 marker in every package)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "neurocomm/py.typed" in names
    for package in ("platform", "agents", "scenarios"):
        assert f"neurocomm/{package}/py.typed" in names


def test_wheel_ships_every_example_config_once(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*")
                     if p.suffix in (".yaml", ".edgelist"))
    assert len(shipped) > 20
    missing = [f for f in shipped if f"neurocomm/{f}" not in names]
    assert not missing, missing
    assert "neurocomm/__init__.py" in names
    assert not [n for n in names if n.startswith("neurocomm/platform/front/")]  # only as `neurocomm`


def test_installed_wheel_imports_runs_and_initialises(wheel: Path, tmp_path: Path) -> None:
    """The wheel in a fresh environment (its dependencies borrowed from this one, offline):
    `neurocomm`, its subpackages and the standard library's `platform` import from there, `neurocomm
    init` copies the shipped configs, and the naming game runs from them through `neurocomm.run`."""
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # dependencies from this environment, without its .pth files (the editable install's finder)
    (Path(site) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()
    init = subprocess.run([str(venv / "bin" / "neurocomm"), "init", str(work)], capture_output=True,
                          text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert (work / "configs" / "quickstart.yaml").read_bytes() == \
        (REPO / "configs" / "quickstart.yaml").read_bytes()
    code = """
import platform, sys
import neurocomm, neurocomm.platform.runner, neurocomm.agents, neurocomm.scenarios
for module in (neurocomm, neurocomm.platform.runner, neurocomm.agents):
    assert module.__file__.startswith(sys.argv[1]), module.__file__
assert platform.system() in ("Linux", "Darwin", "Windows") and platform.__file__.endswith("platform.py")
result = neurocomm.run("configs/naming_game.yaml", ["topology.params.n=30", "logging.dir=runs"])
print(result.status, result.outcome["converged"])
"""
    run = subprocess.run([str(python), "-c", code, site], cwd=work, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["finished", "True"]
