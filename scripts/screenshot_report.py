"""Render a report.html to a PNG with headless Chromium, to look at it as a reader would.

    $ python scripts/screenshot_report.py artifacts/report.html report.png
    $ python scripts/screenshot_report.py artifacts/report.html docs/report-screenshot.png --height 2400

Needs Chromium (Debian: apt-get install -y chromium). The page loads nothing from the network.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.errors import EXIT_USER_ERROR, UserError
from sentiment_gru.screenshot import screenshot


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
