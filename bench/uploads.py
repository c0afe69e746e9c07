"""Memory under a flood of large uploads: N clients each upload M MB at once to
`conduit serve` (max_body_mb 100, the default max_concurrency 4 and max_queue 64).

    python bench/uploads.py [--clients 200] [--mb 50]

Each client sends as curl does: the body goes out while no answer has come, and an
early answer (429) stops it. Reported: answers by status, the server's peak RSS
(VmHWM, before and after), the slowest /health during the flood, and the time.
Target (issue 7): peak RSS under 1 GiB for 200 clients of 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

KEY = "bench-key"
MODEL = '''
import hashlib


class Model:
    thread_safe = True

    def predict(self, data, files):
        out = []
        for upload in files:
            digest = hashlib.sha256()
            for block in iter(lambda: upload.read(1 << 20), b""):
                digest.update(block)
            out.append(digest.hexdigest())
        return out or [len(data)]
'''
CONFIG = """name: uploads
models:
  - type: python
    file: model.py:Model
server:
  max_body_mb: 100
tests:
  - name: warm
    json: [1]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


async def upload(port: int, block: bytes, blocks: int) -> int:
    boundary = "benchb0undary"
    top = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(top) + len(block) * blocks + len(tail)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: {KEY}\r\nContent-Type: multipart/form-data; "
                  f"boundary={boundary}\r\nContent-Length: {length}\r\n\r\n").encode() + top)
    answer = asyncio.ensure_future(reader.readline())

    async def send() -> None:
        for _ in range(blocks):
            writer.write(block)
            await writer.drain()
        writer.write(tail)
        await writer.drain()

    sending = asyncio.ensure_future(send())
    try:
        await asyncio.wait({answer, sending}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            await answer
        status_line = answer.result()
        return int(status_line.split()[1]) if status_line else 0
    except (ConnectionError, OSError):
        return 0
    finally:
        sending.cancel()
        writer.close()


async def watch_health(port: int, stop: asyncio.Event, times: list[float]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get(f"http://127.0.0.1:{port}/health")
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)


async def flood(port: int, clients: int, mb: int) -> tuple[Counter[int], list[float]]:
    block = os.urandom(1 << 20)
    stop = asyncio.Event()
    times: list[float] = []
    watcher = asyncio.ensure_future(watch_health(port, stop, times))
    statuses = await asyncio.gather(*(upload(port, block, mb) for _ in range(clients)))
    stop.set()
    await watcher
    return Counter(statuses), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "model.py").write_text(MODEL)
        (root / "conduit.yaml").write_text(CONFIG)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "conduit_build", "serve", "-f", str(root / "conduit.yaml"), "--port", str(port)],
            env={**os.environ, "CONDUIT_API_KEY": KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the server never got ready"
                time.sleep(0.1)
            before = peak_rss_mib(server.pid)
            started = time.monotonic()
            statuses, times = asyncio.run(flood(port, args.clients, args.mb))
            took = time.monotonic() - started
            after = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    print(f"{args.clients} clients × {args.mb} MB, max_body_mb 100, max_concurrency 4, max_queue 64")
    print(f"answers: {dict(sorted(statuses.items()))} (0 = connection closed before an answer)")
    print(f"server peak RSS: {before:.0f} MiB before, {after:.0f} MiB after the flood (target: under 1024)")
    times.sort()
    print(f"/health during the flood: median {times[len(times) // 2] * 1000:.0f} ms, 95th percentile "
          f"{times[int(len(times) * 0.95)] * 1000:.0f} ms, slowest {times[-1] * 1000:.0f} ms of {len(times)} probes; "
          f"the flood took {took:.1f} s")


if __name__ == "__main__":
    main()
