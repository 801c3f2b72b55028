"""What the CLI prints: through the `neurocomm` logger (-q, -v), tqdm progress bars drawn on a
terminal and nowhere else, and Ray's start-up notices kept off the terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import yaml

from neurocomm.platform.cli import main
from tests.conftest import tiny_config

EXE = str(Path(sys.executable).parent / "neurocomm")
RAY_NOTICE = "Token authentication is enabled"


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_AUTH_MODE", None)  # Ray's default: the notice is printed on every start
    return env


def on_terminal(*args: str, timeout: float = 300) -> tuple[int, str, str]:
    """The CLI with stderr on a pseudo-terminal (120 columns), as in an interactive shell:
    (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=slave, env=_env())
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other end closed: the CLI exited
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), shown.decode(errors="replace")


def test_quiet_prints_only_errors_and_verbose_adds_debug(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "c.yaml", tiny_config(tmp_path))
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: valid (2 agents")
    assert main(["-q", "validate", str(path)]) == 0
    assert capsys.readouterr() == ("", "")
    bad = _write(tmp_path, "bad.yaml", tiny_config(tmp_path, training={"rounds": 0}))
    assert main(["-q", "validate", str(bad)]) == 2  # errors still shown, as one line
    assert capsys.readouterr().err == f"neurocomm: error: {bad}: training.rounds: must be >= 1\n"


def test_progress_bar_on_a_terminal_not_with_quiet(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", tiny_config(
        tmp_path, training={"rounds": 6, "batch_size": 8},
        logging={"dir": str(tmp_path / "runs"), "progress": True, "messages_every": 0}))
    code, out, shown = on_terminal("run", str(path))
    assert code == 0, shown[-2000:]
    assert "run: 100%" in shown and "6/6" in shown and "round/s" in shown and "success" in shown
    assert "status: finished; rounds: 6" in out
    code, out, shown = on_terminal("-q", "run", str(path))
    assert code == 0 and out == "" and shown == ""


def test_sweep_progress_bar_counts_runs(tmp_path: Path) -> None:
    _write(tmp_path, "base.yaml", tiny_config(tmp_path, training={"rounds": 2, "batch_size": 8},
                                             logging={"messages_every": 0}))
    sweep = _write(tmp_path, "sweep.yaml", {
        "name": "s", "base": "base.yaml", "seeds": [0, 1], "dir": str(tmp_path / "sweeps")})
    code, out, shown = on_terminal("sweep", str(sweep))
    assert code == 0, shown[-2000:]
    assert "sweep: 100%" in shown and "2/2" in shown
    assert "run: " not in shown  # a sweep's runs draw no bars of their own
    assert "2 runs; 0 not finished" in out


def test_ray_start_up_notice_goes_to_the_debug_log(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, training={"rounds": 1, "batch_size": 8}, runtime={"backend": "ray"},
                      logging={"dir": str(tmp_path / "runs"), "progress": True, "messages_every": 0})
    path = _write(tmp_path, "ray.yaml", cfg)
    # stderr a pipe (a CI log): no notice, and no progress bar drawn into it
    plain = subprocess.run([EXE, "run", str(path)], capture_output=True, text=True, timeout=300,
                           env=_env())
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert RAY_NOTICE not in plain.stderr + plain.stdout
    assert "\r" not in plain.stderr and "round/s" not in plain.stderr
    verbose = subprocess.run([EXE, "-v", "run", str(path)], capture_output=True, text=True,
                             timeout=300, env=_env())
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert RAY_NOTICE not in verbose.stderr
    assert f"[ray._private.authentication.authentication_token_setup] {RAY_NOTICE}" in verbose.stdout
