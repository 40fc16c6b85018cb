"""Load on `facerec serve`: recognize requests per second and latency with concurrent clients,
beside the same work through the CLI (one `facerec recognize` process per image).

    python tools/bench_serve.py --lfw ../shared/data/lfw \
        --detector yunet:../shared/models/face_detection_yunet_2023mar.onnx \
        --workspace /tmp/serve-bench --clients 1,4,8 --requests 200 --cli-runs 5 [--json]

The workspace gets the shipped model and 20 enrolled LFW people (2 photos each) if it has no
gallery; probes are other photos of LFW people in which the detector finds exactly one face.
The server runs in its own process with the default settings; clients are threads with one HTTP
session each. Run it with nothing else on the machine: the numbers are the machine's, not the code's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

FACEREC = [sys.executable, "-m", "facerec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", required=True, help="LFW folder holding images/")
    parser.add_argument("--detector", default="haar")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--clients", default="1,4,8", help="comma-separated numbers of concurrent clients")
    parser.add_argument("--requests", type=int, default=200, help="requests per client setting")
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ws = Path(args.workspace)
    people = sorted(p for p in (Path(args.lfw) / "images").iterdir() if len(list(p.iterdir())) >= 4)
    enrolled, probes = people[:20], [sorted(p.iterdir())[2] for p in people[:60]]
    if not (ws / "gallery" / "meta.sqlite").exists():
        for person in enrolled:
            subprocess.run([*FACEREC, "enroll", person.name, *map(str, sorted(person.iterdir())[:2]), "-w", str(ws),
                            "--detector", args.detector, "-q"], check=False, stdout=subprocess.DEVNULL)
    key = json.loads(subprocess.run([*FACEREC, "keys", "add", f"bench-{os.getpid()}", "-w", str(ws), "--json"],
                                    check=True, capture_output=True, text=True).stdout)["key"]
    report = {"machine": _machine(), "detector": args.detector, "cli": _cli(ws, probes[:args.cli_runs], args.detector)}
    port = _free_port()
    server = subprocess.Popen([*FACEREC, "serve", "-w", str(ws), "--port", str(port), "--detector", args.detector,
                               "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0, url = time.perf_counter(), f"http://127.0.0.1:{port}"
        while True:
            try:
                requests.get(url + "/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        report["server_start_s"] = round(time.perf_counter() - t0, 2)
        payloads = [p.read_bytes() for p in probes]
        one_face = [i for i, data in enumerate(payloads) if _faces(url, key, data) == 1]
        payloads = [payloads[i] for i in one_face]
        report["probe_images"] = len(payloads)
        report["serve"] = [_load(url, key, payloads, int(c), args.requests) for c in args.clients.split(",")]
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run([*FACEREC, "keys", "revoke", f"bench-{os.getpid()}", "-w", str(ws)], check=False,
                       stdout=subprocess.DEVNULL)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    cli = report["cli"]
    print(f"CLI `facerec recognize` per call: median {cli['median_s']:.2f} s (min {cli['min_s']:.2f}, "
          f"max {cli['max_s']:.2f}, {cli['runs']} runs)")
    print(f"server start (process to first answer): {report['server_start_s']:.1f} s; "
          f"{report['probe_images']} one-face probe images")
    for row in report["serve"]:
        print(f"{row['clients']:3d} clients: {row['requests_per_s']:.1f} req/s, p50 {row['p50_ms']:.0f} ms, "
              f"p99 {row['p99_ms']:.0f} ms ({row['requests']} requests, {row['errors']} errors)")


def _cli(ws: Path, probes: list[Path], detector: str) -> dict:
    times = []
    for probe in probes:
        t0 = time.perf_counter()
        subprocess.run([*FACEREC, "recognize", str(probe), "-w", str(ws), "--detector", detector, "-q", "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return {"runs": len(times), "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def _faces(url: str, key: str, data: bytes) -> int:
    r = requests.post(url + "/recognize", headers={"X-API-Key": key}, files={"images": ("probe.jpg", data)})
    r.raise_for_status()
    return len(r.json()["results"][0]["faces"])


def _load(url: str, key: str, payloads: list[bytes], clients: int, total: int) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        session = requests.Session()
        for i in counter:  # shared iterator: the clients split the requests between them
            data = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            r = session.post(url + "/recognize", headers={"X-API-Key": key}, files={"images": ("probe.jpg", data)})
            elapsed = time.perf_counter() - t0
            with lock:
                (latencies if r.status_code == 200 else errors).append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(latencies) + len(errors), "errors": len(errors),
            "requests_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
