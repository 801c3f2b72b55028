#!/usr/bin/env python3
"""Open an HTML report in headless Chromium and check that every <img> loaded.

    python scripts/check_report_images.py RUN/report/report.html [--chromium /usr/bin/chromium]

A copy of the page gets a small script that, once the page has loaded, writes for each image
whether it loaded (``complete`` and ``naturalWidth > 0``) into the DOM; Chromium's
``--dump-dom`` prints that DOM and this script reads the result back.

Exit status: 0 every image loaded (and there is at least ``--min-images``), 1 some did not,
2 the page or Chromium could not be used.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "neurocomm-image-check"
PROBE = f"""
<script>
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var result = images.map(function (img, i) {{
    return {{index: i, alt: img.alt || "", loaded: img.complete && img.naturalWidth > 0,
             width: img.naturalWidth, height: img.naturalHeight}};
  }});
  var out = document.createElement("pre");
  out.id = "{MARKER}";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}});
</script>
"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=10000",
    "--dump-dom",
)


def with_probe(page: str) -> str:
    """The page with the probe script inserted before </body> (or appended)."""
    match = re.search(r"</body\s*>", page, flags=re.IGNORECASE)
    if match is None:
        return page + PROBE
    return page[: match.start()] + PROBE + page[match.start() :]


def image_status(report: Path, chromium: str, timeout: float = 120.0) -> list[dict[str, object]]:
    """Per image: index, alt, loaded, width, height, as the browser saw them."""
    page = report.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="neurocomm-check-") as tmp:
        probed = Path(tmp) / report.name
        probed.write_text(with_probe(page), encoding="utf-8")
        profile = Path(tmp) / "profile"
        profile.mkdir()
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", probed.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    found = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    if found is None:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        raise RuntimeError(f"Chromium printed no result (exit {done.returncode}): {' | '.join(tail)}")
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, help="the report.html to check")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--min-images", type=int, default=1, help="fail with fewer images than this")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"check_report_images: {args.report}: no such file", file=sys.stderr)
        return 2
    if not Path(args.chromium).exists():
        print(f"check_report_images: no Chromium at {args.chromium}", file=sys.stderr)
        return 2
    try:
        images = image_status(args.report, args.chromium)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
        print(f"check_report_images: {err}", file=sys.stderr)
        return 2
    broken = [img for img in images if not img["loaded"]]
    for img in images:
        state = "ok" if img["loaded"] else "BROKEN"
        print(f"{state:6} image {img['index']} {img['alt']!s:28} {img['width']}x{img['height']}")
    print(f"{len(images) - len(broken)} of {len(images)} images loaded")
    if broken or len(images) < args.min_images:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
