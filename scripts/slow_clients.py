"""Hold slow and idle connections open against the server while a client keeps predicting: check that the server closes
every one within its deadline, that /predict stays fast meanwhile, and that its memory comes back afterwards.

Five kinds of connection take turns, --connections of them open at all times for --seconds (each one the server closes
is opened again): idle (never sends a byte), slow-header (a header line a second), slow-body (a byte of body a second),
short-body (a Content-Length 100 bytes over what it sends) and big-header (an endless header, 4 KiB a second). Each must
be closed by the server within its deadline (--keep-alive-timeout, --header-timeout or --body-timeout) plus --slack
seconds. Meanwhile --predict-clients clients post one test text at a time to /predict.

    $ python scripts/slow_clients.py --artifacts artifacts                       # 200 connections for 60 s
    $ python scripts/slow_clients.py --artifacts artifacts --connections 20 --seconds 10 --header-timeout 2

The server runs in a subprocess on a free local port with the given deadlines; the clients share the machine with
it. Exit status 0 when every connection was closed in time, the /predict p99 is under --p99-ms and the server's
resident memory afterwards is within --memory-growth of what it was before; 1 otherwise. Results go to --output as JSON.
"""

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from load_test import arguments_and_bodies, resident_memory, run_level

from benchmarks.server import ServerProcess
from sentiment_gru.errors import EXIT_USER_ERROR
from sentiment_gru.inference.folder import read_folder
from sentiment_gru.serve.settings import ServeSettings

KINDS = ("idle", "slow-header", "slow-body", "short-body", "big-header")
DEADLINE = {"idle": "keep_alive_timeout", "slow-header": "header_timeout", "slow-body": "body_timeout",
            "short-body": "body_timeout", "big-header": "header_timeout"}  # the setting that must close each kind


def parse_args(argv=None) -> argparse.Namespace:
    defaults = ServeSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="artifacts", help="model folder to serve (default: %(default)s)")
    parser.add_argument("--backend", default="onnx", help="(default: %(default)s)")
    parser.add_argument("--connections", type=int, default=200, help="slow connections open at once (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they are kept up (default: %(default)s)")
    parser.add_argument("--predict-clients", type=int, default=4, help="clients posting to /predict meanwhile (default: %(default)s)")
    for name in ("keep_alive_timeout", "header_timeout", "body_timeout"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name),
                            help="the server's setting (default: %(default)s)")
    parser.add_argument("--slack", type=float, default=2.0, help="seconds past a deadline a close may come (default: %(default)s)")
    parser.add_argument("--p99-ms", type=float, default=50.0, help="the most /predict p99 allowed (default: %(default)s)")
    parser.add_argument("--memory-growth", type=float, default=0.10, help="the most resident memory may grow (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("artifacts/slow_clients.json"), help="JSON results (default: %(default)s)")
    args = parser.parse_args(argv)
    read_folder(args.artifacts, verify=())  # a missing or broken model folder, said in one line
    return args


async def feed(kind: str, writer: asyncio.StreamWriter, body: bytes) -> None:
    """What a connection of `kind` sends, slowly, until the server closes it."""
    head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if kind == "idle":
        return
    if kind == "slow-header":
        writer.write(head)
        while True:
            await asyncio.sleep(1)
            writer.write(b"X-Slow: 1\r\n")
    if kind == "big-header":
        writer.write(head + b"X-Big: ")
        while True:
            await asyncio.sleep(1)
            writer.write(b"a" * 4096)
    if kind == "short-body":
        writer.write(head + b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body)
        return
    writer.write(head + b"Content-Length: 10000\r\n\r\n")  # slow-body
    while True:
        await asyncio.sleep(1)
        writer.write(b" ")


async def slow_connection(kind: str, port: int, body: bytes, until: float, bound: float, found: list[dict]) -> None:
    """Connections of `kind`, one after another until `until` (loop time): each kept open until the server closes it."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        opened = loop.time()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            found.append({"kind": kind, "closed_by_server": False, "seconds": 0.0, "status": f"connect: {exc}"})
            await asyncio.sleep(0.1)
            continue
        sending = asyncio.create_task(feed(kind, writer, body))
        try:
            answer = await asyncio.wait_for(reader.read(), bound + 30)  # until the server closes it
            closed = True
        except (asyncio.TimeoutError, OSError):
            answer, closed = b"", False
        seconds = loop.time() - opened
        sending.cancel()
        writer.close()
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else ("closed" if closed else "open")
        found.append({"kind": kind, "closed_by_server": closed, "seconds": round(seconds, 3), "status": status})


async def predicting(url: str, bodies: list[bytes], clients: int, until: float, latencies: list[float], errors: Counter) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def client(offset: int) -> None:
            sent = offset
            while loop.time() < until:
                began = time.perf_counter()
                try:
                    async with session.post(url + "/predict", data=bodies[sent % len(bodies)],
                                            headers={"content-type": "application/json"}) as response:
                        await response.read()
                        if response.status != 200:
                            errors[f"HTTP {response.status}"] += 1
                            continue
                except aiohttp.ClientError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - began)
                sent += clients

        await asyncio.gather(*(client(i) for i in range(clients)))


async def run(args: argparse.Namespace, server: ServerProcess, bodies: list[bytes]) -> dict:
    loop = asyncio.get_running_loop()
    until = loop.time() + args.seconds
    found: list[dict] = []
    latencies: list[float] = []
    errors: Counter = Counter()
    bounds = {kind: getattr(args, DEADLINE[kind]) for kind in KINDS}
    slow = [slow_connection(KINDS[i % len(KINDS)], server.port, bodies[0], until, bounds[KINDS[i % len(KINDS)]], found)
            for i in range(args.connections)]
    await asyncio.gather(predicting(server.url, bodies, args.predict_clients, until, latencies, errors), *slow)
    ms = np.asarray(latencies) * 1000
    by_kind = {}
    for kind in KINDS:
        rows = [row for row in found if row["kind"] == kind]
        late = [row for row in rows if not row["closed_by_server"] or row["seconds"] > bounds[kind] + args.slack]
        by_kind[kind] = {"deadline_s": bounds[kind], "connections": len(rows), "late_or_open": len(late),
                         "seconds_max": max((row["seconds"] for row in rows), default=None),
                         "seconds_median": float(np.median([row["seconds"] for row in rows])) if rows else None,
                         "answers": dict(Counter(row["status"] for row in rows))}
    return {"kinds": by_kind, "predict": {"requests": len(latencies), "errors": dict(errors),
                                          "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
                                          "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None}}


def main(argv=None) -> int:
    import datasets

    datasets.disable_progress_bars()
    if (prepared := arguments_and_bodies(parse_args, argv)) is None:
        return EXIT_USER_ERROR
    args, bodies = prepared
    deadlines = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in ("keep_alive_timeout", "header_timeout", "body_timeout")]
    with ServerProcess(["--artifacts", str(args.artifacts), "--backend", args.backend, *deadlines]) as server:
        asyncio.run(run_level(server.url, bodies, args.predict_clients, 2000, 60, 60))  # warm-up, untimed
        before = resident_memory(server.pid)
        print(f"server ready, {before['rss_mib']} MiB resident; {args.connections} slow connections for {args.seconds:g} s", flush=True)
        results = asyncio.run(run(args, server, bodies))
        time.sleep(2)
        after = resident_memory(server.pid)
        server.stop()
    growth = after["rss_mib"] / before["rss_mib"] - 1
    results.update(memory={"before_mib": before["rss_mib"], "after_mib": after["rss_mib"], "peak_mib": after["peak_rss_mib"],
                           "growth": round(growth, 4)},
                   machine={"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
                   settings={"connections": args.connections, "seconds": args.seconds, "predict_clients": args.predict_clients})
    for kind, row in results["kinds"].items():
        print(f"{kind:<12} deadline {row['deadline_s']:>5g} s  {row['connections']:>5} connections  closed after median "
              f"{row['seconds_median']:.2f} s, max {row['seconds_max']:.2f} s  late or left open: {row['late_or_open']}  {row['answers']}")
    p = results["predict"]
    print(f"/predict meanwhile: {p['requests']} requests, {sum(p['errors'].values())} errors, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms")
    print(f"resident memory: {before['rss_mib']} MiB before, {after['rss_mib']} MiB after ({growth:+.1%}), peak {after['peak_rss_mib']} MiB")
    ok = (all(row["late_or_open"] == 0 and row["connections"] > 0 for row in results["kinds"].values())
          and p["p99_ms"] is not None and p["p99_ms"] < args.p99_ms and not p["errors"] and growth <= args.memory_growth)
    results["passed"] = ok
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'PASS' if ok else 'FAIL'}; results written to {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
