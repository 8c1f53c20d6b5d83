"""Check the page at / in headless Chromium: type two texts, check the labels it shows, and save a screenshot.

    $ python scripts/browser_check.py --artifacts artifacts --screenshot docs/serve-screenshot.png
    $ python scripts/browser_check.py --url http://127.0.0.1:8000 --case "a wonderful film" positive --case "a dull mess" negative

Starts the server on a free local port (or uses --url). Needs Playwright (pip install playwright) and Debian's
Chromium (apt-get install -y chromium); it never downloads a browser. Exit status 0 when every label is the
expected one, the text is shown with its words marked, a text longer than the model reads is shown as cut, and the
page loaded nothing from elsewhere; 1 when not; 2 on a set-up error.
"""

import argparse
import json
import shutil
import urllib.request
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentiment_gru.errors import EXIT_USER_ERROR, ConfigError, UserError
from benchmarks.server import ServerProcess
from sentiment_gru.inference.backends import BACKEND_CHOICES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SHOWN = "text => { const result = document.querySelector('#result'); return !result.hidden && result.dataset.text === text; }"
CASES = [("A wonderful, moving film with a superb cast.", "positive"),
         ("A dull, tedious script, despite one charming scene.", "negative")]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--artifacts", default="artifacts", help="model folder to serve (default: %(default)s)")
    target.add_argument("--url", help="check a server that is already running instead")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="with --artifacts (default: %(default)s)")
    parser.add_argument("--case", nargs=2, action="append", metavar=("TEXT", "LABEL"),
                        help="a text to type and the label expected (give two or more; default: a positive and a negative review)")
    parser.add_argument("--screenshot", type=Path, default=Path("docs/serve-screenshot.png"), help="(default: %(default)s)")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary (default: %(default)s)")
    args = parser.parse_args(argv)
    if shutil.which(args.chromium) is None:
        raise ConfigError(f"No Chromium at {args.chromium}. Install it with: apt-get install -y chromium (or pass --chromium PATH).")
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise ConfigError("The browser check drives Chromium with Playwright: pip install playwright "
                          "(Debian's Chromium is used; no browser download is needed).") from None
    return args


def check_page(url: str, cases: list[tuple[str, str]], screenshot: Path, chromium: str = CHROMIUM) -> list[str]:
    """Type each case's text into the page at `url`, wait for its result and return what went wrong (nothing: [])."""
    from playwright.sync_api import sync_playwright

    problems, elsewhere = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.on("request", lambda request: None if request.url.startswith(url) else elsewhere.append(request.url))
            page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
            page.goto(url + "/")
            page.wait_for_function("document.querySelector('#model').textContent.startsWith('Model:')", timeout=60_000)
            for text, expected in cases:
                page.fill("#text", "")
                page.locator("#text").press_sequentially(text)
                page.click("#classify")
                page.wait_for_function(SHOWN, arg=text, timeout=30_000)
                shown, score = page.text_content("#label"), page.text_content("#score")
                marked = page.locator("#highlighted mark").all_text_contents()
                print(f"{'ok' if shown == expected else 'WRONG'}: {text!r} -> {shown} ({score}); marked: {', '.join(marked) or 'none'}")
                if shown != expected:
                    problems.append(f"{text!r}: the page shows {shown!r}, expected {expected!r}")
                if page.text_content("#highlighted") != text:
                    problems.append(f"{text!r}: the highlighted text reads {page.text_content('#highlighted')!r}")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            long = _longer_than_read(url)
            page.fill("#text", long)
            page.click("#classify")
            page.wait_for_function(SHOWN, arg=long, timeout=30_000)
            if page.is_visible("#truncated") and page.locator("#highlighted .unread").count() == 1:
                print(f"ok: a text of {len(long):,} characters -> {page.text_content('#truncated')}")
            else:
                problems.append(f"a text of {len(long):,} characters: the page does not show that the model read only part of it")
        finally:
            browser.close()
    problems += [f"the page loaded {address}, which is not on this server" for address in elsewhere]
    return problems


def _longer_than_read(url: str) -> str:
    """A text of more tokens than the model at `url` reads (each letter and comma is a token), within its --max-chars."""
    with urllib.request.urlopen(f"{url}/info", timeout=30) as response:
        info = json.load(response)
    return ("a," * info["read_length"])[: info["limits"]["max_chars"]]


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    cases = [tuple(case) for case in args.case] if args.case else CASES
    if args.url:
        problems = check_page(args.url.rstrip("/"), cases, args.screenshot, args.chromium)
    else:
        try:
            with ServerProcess(["--artifacts", str(args.artifacts), "--backend", args.backend]) as server:
                problems = check_page(server.url, cases, args.screenshot, args.chromium)
        except RuntimeError as exc:  # the server did not start: its own output says why
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"screenshot saved to {args.screenshot}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
