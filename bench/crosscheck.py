#!/usr/bin/env python3
"""A second opinion on herald-load's latency: a few SSE subscribers written independently of it
(Python's asyncio and its own parsing, no code shared with the tool), each timestamping the
arrival of every `HLM<seq>.<send µs>` marker that herald-load publishes. Run it beside a
herald-load run against the same server (`--url`) and compare the percentiles (BENCHMARKS.md,
"Cross-check").

    bench/crosscheck.py --url 127.0.0.1:3000 --target herald --streams 50 --open-over 10 --seconds 60

Streams are opened one by one over --open-over seconds, so that they sit among the tool's
streams (opened meanwhile) rather than all first or all last in a server's subscriber list.
"""
import argparse
import asyncio
import re
import time

MARKER = re.compile(rb"HLM(\d+)\.(\d+)")
# herald-load's warm-up message is numbered beyond any run.
WARM_UP = 1 << 40


def now_us():
    return time.time_ns() // 1000


async def request(reader, writer, head):
    writer.write(head.encode())
    await writer.drain()
    status = await reader.readline()
    headers = {}
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return int(status.split()[1]), headers


async def read_body(reader, headers):
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:  # chunked
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return body
        body += await reader.readexactly(size)
        await reader.readline()


async def open_stream(host, port, target):
    reader, writer = await asyncio.open_connection(host, port)
    path, cookie = "/sub/bench", ""
    if target == "herald":
        status, headers = await request(
            reader, writer, f"GET / HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n\r\n"
        )
        page = (await read_body(reader, headers)).decode()
        path = re.search(r'hx-sse:connect="([^"]+)"', page).group(1).replace("&amp;", "&")
        cookie = "Cookie: " + headers["set-cookie"].split(";")[0] + "\r\n"
    elif target == "node":
        path = "/sub"
    status, headers = await request(
        reader,
        writer,
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n{cookie}\r\n",
    )
    assert status == 200, f"stream: status {status}"
    return reader, writer, headers.get("transfer-encoding", "") == "chunked"


async def follow(reader, chunked, latencies, stop):
    seen = set()
    pending = b""
    while not stop.is_set():
        if chunked:
            size = int((await reader.readline()).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            piece = data[:-2]
        else:
            piece = await reader.read(65536)
        if not piece:
            return
        arrived = now_us()
        pending += piece
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            m = MARKER.search(line)
            if m:
                seq, sent = int(m.group(1)), int(m.group(2))
                if seq < WARM_UP and seq not in seen:
                    seen.add(seq)
                    latencies.append(arrived - sent)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="HOST:PORT (loopback)")
    p.add_argument("--target", default="herald", choices=["herald", "nchan", "floor", "node"])
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--open-over", type=float, default=10.0, help="seconds to open them over")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to listen")
    a = p.parse_args()
    host, port = a.url.rsplit(":", 1)
    latencies, stop, tasks, writers = [], asyncio.Event(), [], []
    for _ in range(a.streams):
        reader, writer, chunked = await open_stream(host, int(port), a.target)
        writers.append(writer)  # a writer dropped closes its connection
        tasks.append(asyncio.create_task(follow(reader, chunked, latencies, stop)))
        await asyncio.sleep(a.open_over / a.streams)
    await asyncio.sleep(a.seconds - a.open_over)
    stop.set()
    for t in tasks:
        t.cancel()
    values = sorted(latencies)
    if not values:
        print("crosscheck: no messages")
        return
    ms = lambda us: f"{us / 1000:.1f}"
    print(
        f"crosscheck: {a.streams} streams, {len(values)} deliveries, latency p50/p99/p99.9/max "
        f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.99))} / "
        f"{ms(percentile(values, 0.999))} / {ms(values[-1])} ms"
    )


asyncio.run(main())
