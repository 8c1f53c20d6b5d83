"""A PNG of an HTML page, taken with headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import ConfigError, UserError

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
        raise UserError(f"{html_file}: no such file. Write a report first: python scripts/evaluate.py")
    if width < 100 or height < 100:
        raise ConfigError(f"--width and --height must be at least 100 pixels. Got {width}x{height}.")
    executable = find_browser(browser)
    png_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        command = [executable, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_file}", f"--window-size={width},{height}",
                   html_file.resolve().as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png_file.is_file():
        raise UserError(f"Chromium failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:] or 'no message'}")
    return png_file
