#!/usr/bin/env python3
"""Drive a neurocomm report page in headless Chromium through the DevTools protocol.

    python scripts/drive_report.py RUN/report/report.html [--chromium /usr/bin/chromium]
    python scripts/drive_report.py OUT/compare.html

The page is loaded unchanged; the controls are worked as a user would, with synthetic key
presses, typing and pointer moves sent through Chromium's ``Input`` domain (not by setting
values from script):

* run report: the checkpoint slider is focused and moved with the arrow keys, and the heat map
  cells and node colours are read back before and after; the games table is filtered by typing
  a round range and picking "won"/"lost" with the keyboard, and its visible rows counted; the
  pointer is moved over a heat-map cell and a graph node, and the tooltip read;
* comparison page: the measure is changed with the keyboard and the chart read back; the
  pointer is moved over a point and the tooltip read.

Prints what it saw as JSON. Exit status 0 when every control did what it should, 1 when one
did not, 2 when Chromium or the page could not be used. Needs ``websocket-client``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1300,1000",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)
KEYS = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40, "Home": 36, "End": 35}


class Browser:
    """One headless Chromium with one page, spoken to over the DevTools websocket."""

    def __init__(self, chromium: str, timeout: float = 60.0) -> None:
        import websocket  # websocket-client

        self._tmp = tempfile.TemporaryDirectory(prefix="neurocomm-drive-")
        profile = Path(self._tmp.name)
        # its own process group: Chromium's helper processes (renderer, crash handler) may
        # outlive the browser process and still be writing the profile when it is removed
        self._proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as reply:
            targets = json.load(reply)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout)
        self._next = 0
        self.requests: list[str] = []  # every URL the page asked for, from Network events
        self.call("Network.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> Any:
        """The value of an expression in the page (read-only probes of the DOM)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, timeout: float = 30.0) -> None:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while self.js("document.body && document.body.getAttribute('data-ready')") != "1":
            if time.monotonic() > deadline:
                raise RuntimeError("the page's script did not finish (no data-ready on <body>)")
            time.sleep(0.1)

    def centre(self, selector: str) -> tuple[float, float]:
        box = self.js(
            f"(function(){{var e=document.querySelector({json.dumps(selector)});"
            "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
            "return [r.left+r.width/2, r.top+r.height/2];})()"
        )
        return float(box[0]), float(box[1])

    def click(self, selector: str) -> None:
        x, y = self.centre(selector)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def hover(self, selector: str) -> None:
        x, y = self.centre(selector)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def focus(self, selector: str) -> None:
        node = self.call("DOM.getDocument")["root"]["nodeId"]
        found = self.call("DOM.querySelector", nodeId=node, selector=selector)["nodeId"]
        self.call("DOM.focus", nodeId=found)

    def key(self, name: str) -> None:
        code = KEYS[name]
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=name, code=name, windowsVirtualKeyCode=code)

    def type_into(self, selector: str, text: str) -> None:
        self.focus(selector)
        self.call("Input.insertText", text=text)

    def screenshot(self, path: Path) -> None:
        """The visible part of the page as a PNG."""
        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if getattr(self, "_ws", None) is not None:
                self._ws.close()
        finally:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
            self._signal_group(signal.SIGKILL)  # any helper still running
            self._proc.wait()
            self._tmp.cleanup()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _all(selector: str, value: str) -> str:
    """A page expression: ``value`` (a JS expression of ``e``) for every element matching ``selector``."""
    return f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(function(e){{return {value}}})"


CELLS = _all("#heatmap .cell", "e.getAttribute('fill')")
NODES = _all("#graph .node", "e.getAttribute('fill')")
ROWS = "document.querySelectorAll('#games-table tbody tr').length"
ROUNDS = _all("#games-table tbody tr", "+e.cells[0].textContent")
SPEAKERS = _all("#games-table tbody tr", "e.cells[1].textContent.split(' ')[0]")
SUCCESS = _all("#games-table tbody tr", "e.cells[6].textContent")
MATCHING = "parseInt(document.getElementById('games-count').textContent, 10)"
TOOLTIP = (
    "(function(){var t=document.getElementById('tooltip');"
    "return t.style.display==='block'?t.textContent:null})()"
)


def _fetched(b: Browser, page: Path) -> list[str]:
    """URLs the page loaded other than itself and inline data: (should be none)."""
    return [u for u in b.requests if u != page.resolve().as_uri() and not u.startswith("data:")]


def _state(b: Browser) -> dict[str, Any]:
    return {
        "slider": b.js("document.getElementById('checkpoint-slider').value"),
        "label": b.js("document.getElementById('checkpoint-label').textContent"),
        "cells": b.js(CELLS),
        "nodes": b.js(NODES),
    }


def drive_run_report(b: Browser, page: Path) -> dict[str, Any]:
    """Work every control of a run report; return what was seen before and after each step."""
    b.open(page.resolve().as_uri())
    seen: dict[str, Any] = {
        "fetched": _fetched(b, page),
        "checkpoints": b.js(
            "JSON.parse(document.getElementById('report-data').textContent).checkpoints.length"
        ),
    }
    seen["slider_start"] = _state(b)
    b.focus("#checkpoint-slider")
    b.key("Home")
    seen["slider_first"] = _state(b)
    b.key("ArrowRight")
    seen["slider_next"] = _state(b)
    b.hover("#heatmap .cell")
    seen["cell_tooltip"] = b.js(TOOLTIP)
    b.hover("#graph .node")
    seen["node_tooltip"] = b.js(TOOLTIP)
    b.hover("#heatmap .cell:last-of-type")
    seen["rows_all"] = b.js(ROWS)
    seen["matching_all"] = b.js(MATCHING)
    seen["rounds_all"] = b.js(ROUNDS)
    rounds = sorted(set(seen["rounds_all"]))
    lo = rounds[len(rounds) // 2] if rounds else 0
    b.type_into("#filter-round-min", str(lo))
    seen["round_min"] = lo
    seen["rounds_filtered"] = b.js(ROUNDS)
    seen["matching_rounds"] = b.js(MATCHING)
    b.focus("#filter-success")
    b.key("ArrowDown")  # any -> won
    seen["success_choice"] = b.js("document.getElementById('filter-success').value")
    seen["success_filtered"] = b.js(SUCCESS)
    seen["matching_won"] = b.js(MATCHING)
    b.key("ArrowDown")  # won -> lost
    seen["lost_filtered"] = b.js(SUCCESS)
    seen["matching_lost"] = b.js(MATCHING)
    b.focus("#filter-speaker")
    b.key("ArrowDown")  # any -> the first agent
    seen["speaker_choice"] = b.js("document.getElementById('filter-speaker').value")
    seen["speakers_filtered"] = b.js(SPEAKERS)
    seen["matching_speaker"] = b.js(MATCHING)
    seen["count_text"] = b.js("document.getElementById('games-count').textContent")
    return seen


def check_run_report(seen: dict[str, Any]) -> list[str]:
    """What did not behave; empty when every control worked."""
    problems = [f"the page fetched {u}" for u in seen["fetched"]]
    if seen["checkpoints"] > 1:
        if seen["slider_first"]["label"] == seen["slider_next"]["label"]:
            problems.append("the arrow key did not move the checkpoint slider")
        if seen["slider_first"]["cells"] == seen["slider_next"]["cells"]:
            problems.append("moving the slider did not change the heat map")
    if seen["slider_start"]["cells"] and not seen["cell_tooltip"]:
        problems.append("hovering a heat-map cell showed no tooltip")
    if not seen["node_tooltip"] or "agent" not in seen["node_tooltip"]:
        problems.append("hovering a graph node showed no tooltip")
    if seen["rows_all"]:
        if any(r < seen["round_min"] for r in seen["rounds_filtered"]):
            problems.append("the round filter let earlier rounds through")
        if seen["matching_rounds"] >= seen["matching_all"] and min(seen["rounds_all"]) < seen["round_min"]:
            problems.append("the round filter did not hide any row")
        if seen["matching_won"] + seen["matching_lost"] != seen["matching_rounds"]:
            problems.append("won and lost games do not add up to the games in the round range")
        if seen["success_choice"] != "won" or any(v != "yes" for v in seen["success_filtered"]):
            problems.append("the success filter did not keep only won games")
        if any(v != "no" for v in seen["lost_filtered"]):
            problems.append("the success filter did not keep only lost games")
        if any(v != seen["speaker_choice"] for v in seen["speakers_filtered"]):
            problems.append("the speaker filter let other speakers through")
        if seen["matching_speaker"] > seen["matching_lost"]:
            problems.append("adding the speaker filter showed more games, not fewer")
    return problems


def drive_compare_page(b: Browser, page: Path) -> dict[str, Any]:
    """Change the measure with the keyboard and hover a point of a comparison page."""
    b.open(page.resolve().as_uri())
    chart = "document.getElementById('compare-chart').innerHTML"
    seen: dict[str, Any] = {
        "fetched": _fetched(b, page),
        "measure_start": b.js("document.getElementById('measure-select').value"),
    }
    seen["chart_start"] = b.js(chart)
    b.focus("#measure-select")
    b.key("ArrowDown")
    seen["measure_next"] = b.js("document.getElementById('measure-select').value")
    seen["chart_next"] = b.js(chart)
    seen["points"] = b.js("document.querySelectorAll('#compare-chart .ci-point').length")
    if seen["points"]:
        b.hover("#compare-chart .ci-point")
        seen["point_tooltip"] = b.js(TOOLTIP)
    return seen


def check_compare_page(seen: dict[str, Any]) -> list[str]:
    problems = [f"the page fetched {u}" for u in seen["fetched"]]
    if seen["measure_start"] == seen["measure_next"]:
        problems.append("the arrow key did not change the measure")
    elif seen["chart_start"] == seen["chart_next"]:
        problems.append("changing the measure did not redraw the chart")
    if seen["points"] and not seen.get("point_tooltip"):
        problems.append("hovering a point showed no tooltip")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", type=Path, help="a report.html or compare.html")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page as the drive left it")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"drive_report: {args.page}: no such file", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"drive_report: no Chromium at {args.chromium}", file=sys.stderr)
        return 2
    compare = "id='measure-select'" in args.page.read_text(encoding="utf-8")
    try:
        with Browser(args.chromium) as b:
            seen = drive_compare_page(b, args.page) if compare else drive_run_report(b, args.page)
            if args.screenshot:
                b.screenshot(args.screenshot)
    except (RuntimeError, OSError, ImportError) as err:
        print(f"drive_report: {err}", file=sys.stderr)
        return 2
    problems = check_compare_page(seen) if compare else check_run_report(seen)
    for key, value in seen.items():
        shown = f"{len(value)} items" if isinstance(value, list) and len(value) > 8 else value
        if isinstance(value, str) and len(value) > 160:
            shown = value[:160] + "..."
        if isinstance(value, dict):
            shown = {k: v for k, v in value.items() if k in ("slider", "label")}
        print(f"{key}: {shown}")
    for p in problems:
        print(f"FAILED: {p}")
    print("every control worked" if not problems else f"{len(problems)} control(s) failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
