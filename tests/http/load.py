"""A bounded load test of POST /v1/verify: CONCURRENCY keep-alive connections (asyncio, raw
HTTP/1.1: no package needed) send REQUESTS calls in all, one address each, round robin over
ADDRESSES; prints requests/s and the latency percentiles. Figures are for docs/BENCHMARKS.md;
no test asserts them (tests/http_api.rs checks only that every call succeeded).

    python3 tests/http/load.py BASE_URL TOKEN REQUESTS CONCURRENCY ADDRESS...
"""

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def worker(host, port, token, jobs, addresses, latencies, failures):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            try:
                n = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = json.dumps({"address": addresses[n % len(addresses)]}).encode()
            request = (
                f"POST /v1/verify HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                failures.append(status_line.decode().strip())
    finally:
        writer.close()


async def main():
    base, token, total, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    addresses = sys.argv[5:]
    url = urlsplit(base)
    jobs = asyncio.Queue()
    for n in range(total):
        jobs.put_nowait(n)
    latencies, failures = [], []
    started = time.perf_counter()
    await asyncio.gather(*(worker(url.hostname, url.port, token, jobs, addresses, latencies, failures)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    print(json.dumps({
        "requests": len(latencies), "concurrency": concurrency, "failures": len(failures),
        "first_failures": failures[:3], "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(50), 2), "p90_ms": round(pct(90), 2), "p99_ms": round(pct(99), 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }))
    sys.exit(1 if failures else 0)


asyncio.run(main())
