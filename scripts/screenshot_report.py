"""Render a report.html to a PNG with headless Chromium, to look at it as a reader would.

    $ python scripts/screenshot_report.py artifacts/report.html report.png
    $ python scripts/screenshot_report.py artifacts/report.html docs/report-screenshot.png --height 2400

Needs Chromium (Debian: apt-get install -y chromium). The page loads nothing from the network.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.errors import EXIT_USER_ERROR, ConfigError, UserError, command

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars",
)


def find_browser(browser: str | None = None) -> str:
    """The Chromium executable to use, or a UserError saying how to install one."""
    for name in (browser,) if browser else BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise UserError(f"No Chromium found ({browser or ', '.join(BROWSERS)}). Install it: apt-get install -y chromium, or pass --browser PATH.")


def screenshot(html_file: str | Path, png_file: str | Path, width: int = 1280, height: int = 4000, browser: str | None = None,
               timeout: float = 120.0) -> Path:
    """Render `html_file` in a `width` x `height` window and write the PNG; return its path."""
    html_file, png_file = Path(html_file), Path(png_file).resolve()
    if not html_file.is_file():
        raise UserError(f"{html_file}: no such file. Write a report first: {command('evaluate')}")
    if width < 100 or height < 100:
        raise ConfigError(f"--width and --height must be at least 100 pixels. Got {width}x{height}.")
    executable = find_browser(browser)
    png_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        argv = [executable, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_file}", f"--window-size={width},{height}",
                   html_file.resolve().as_uri()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png_file.is_file():
        raise UserError(f"Chromium failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:] or 'no message'}")
    return png_file


def main(argv=None):
    parser = argparse.ArgumentParser(prog="screenshot_report", description=__doc__.splitlines()[0])
    parser.add_argument("html", help="the report.html to render")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default: %(default)s)")
    parser.add_argument("--height", type=int, default=4000, help="window height in pixels; the PNG shows this much of the page (default: %(default)s)")
    parser.add_argument("--browser", help="Chromium executable (default: chromium, chromium-browser or google-chrome on PATH)")
    args = parser.parse_args(argv)
    try:
        screenshot(args.html, args.png, width=args.width, height=args.height, browser=args.browser)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
