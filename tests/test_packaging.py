"""Packaging: the standard-library ``platform`` is not shadowed; the layering rule holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_wheel_ships_py_typed(tmp_path: Path) -> None:
    """A type checker sees the packages' annotations (PEP 561 marker in every package)."""
    import zipfile

    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("neurocomm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("platform", "agents", "scenarios"):
        assert f"neurocomm/{package}/py.typed" in names
