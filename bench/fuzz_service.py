"""Fuzz a real server with malformed requests: no 5xx, no URL fetched, bounded memory.

Serves the packaged model with ``bentoml serve`` and sends a seeded corpus of hostile or broken
requests, most of them at once (16 concurrent), then checks that a good request still works:

  random bytes under every Content-Type; valid JPEG/PNG/WEBP cut at random points; wrong
  types (JSON, forms, XML, text, BentoML's pickle, GET/PUT/DELETE); a lying Content-Length
  (more than sent, then closed or stalled; less than sent); chunked bodies over the request
  cap; bombs (pixel-count and decompression bombs, a gzip body); URLs in place of files
  (pointing at a local server that records any fetch); path-traversal, NUL and huge file
  names; bad ``top_k`` in forms and queries; broken multipart (no or wrong boundary, no end,
  nameless and duplicate parts, many parts).

Prints the count of each status, the 5xx count (must be 0), the URL fetch count (must be 0)
and the RSS of both workers before and after. Exits 1 if a 5xx or a fetch happened.

    .venv/bin/python bench/fuzz_service.py [--export models/bento/artist-id.tar] [--per-kind 60]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import gzip
import http.server
import io
import os
import random
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from artist_id import localserve

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "models" / "bento" / "artist-id.tar"
MB = 1024 * 1024

Case = tuple[str, dict[str, Any]]  # (kind, httpx request kwargs incl. method and url)
RawCase = tuple[str, bytes, float]  # (kind, bytes to send, seconds to wait before closing)


def _image(fmt: str, size: tuple[int, int], seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(arr).resize(size)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def _png(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG header claiming width x height over a few bytes of pixels."""
    return _png(width, height, zlib.compress(b"\0" * 64))


def _png_bomb(side: int) -> bytes:
    """A valid greyscale PNG of side x side black pixels in a few kilobytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    return _png(side, side, b"".join(comp.compress(row) for _ in range(side)) + comp.flush())


def _multipart(
    parts: list[tuple[bytes, bytes]], boundary: bytes = b"fz", end: bool = True
) -> bytes:
    body = b"".join(
        b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts
    )
    return body + (b"--" + boundary + b"--\r\n" if end else b"")


def _disposition(name: bytes, filename: bytes | None = None) -> bytes:
    head = b'Content-Disposition: form-data; name="' + name + b'"'
    return head + (b'; filename="' + filename + b'"' if filename is not None else b"")


def corpus(
    rng: random.Random, per_kind: int, cap: int, url: str
) -> tuple[list[Case], list[RawCase]]:
    """The seeded corpus: httpx cases and raw-socket cases."""
    good = {
        fmt: _image(fmt, (rng.randint(40, 400), rng.randint(40, 400)), i)
        for i, fmt in enumerate(("JPEG", "PNG", "WEBP"))
    }
    content_types = [
        "image/jpeg",
        "image/png",
        "application/octet-stream",
        "",
        "text/plain",
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=fz",
        "application/x-www-form-urlencoded",
        "application/vnd.bentoml+pickle",
    ]
    paths = ["/predict", "/predict_batch"]
    cases: list[Case] = []
    raw: list[RawCase] = []

    def post(kind: str, **kwargs: Any) -> None:
        cases.append((kind, {"method": "POST", "url": rng.choice(paths), **kwargs}))

    for _ in range(per_kind):
        ct = rng.choice(content_types)
        post(
            "random_bytes",
            content=rng.randbytes(rng.randint(0, 4000)),
            headers={"content-type": ct} if ct else {},
        )
        fmt = rng.choice(list(good))
        data = good[fmt]
        cut = data[: rng.randint(0, len(data) - 1)]
        if rng.random() < 0.5:
            post("truncated", content=cut, headers={"content-type": "image/jpeg"})
        else:
            post("truncated", files={"image": ("a.jpg", cut), "images": ("b.jpg", cut)})
        # wrong types
        kind_choice = rng.randrange(6)
        if kind_choice == 0:
            post("wrong_type", json={"image": rng.randbytes(8).hex(), "top_k": 2})
        elif kind_choice == 1:
            post("wrong_type", data={"image": "x", "images": "y"})
        elif kind_choice == 2:
            post(
                "wrong_type",
                content=b"<image>no</image>",
                headers={"content-type": "application/xml"},
            )
        elif kind_choice == 3:
            post(
                "wrong_type",
                content=b"\x80\x04K\x01.",
                headers={"content-type": "application/vnd.bentoml+pickle"},
            )
        else:
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
            cases.append(
                ("wrong_method", {"method": method, "url": rng.choice(paths), "content": data})
            )
        # URLs in place of files: the recording server must see no request
        target = rng.choice(
            [url, url.replace("127.0.0.1", "localhost"), "http://169.254.169.254/latest/meta-data/"]
        )
        which = rng.randrange(4)
        if which == 0:
            post("url", data={"image": target, "images": target}, files={"x": ("x", b"x")})
        elif which == 1:
            post("url", content=target.encode(), headers={"content-type": "text/plain"})
        elif which == 2:
            post("url", json={"image": target})
        else:
            body = _multipart(
                [
                    (_disposition(b"image"), target.encode()),
                    (_disposition(b"images"), target.encode()),
                ]
            )
            post("url", content=body, headers={"content-type": "multipart/form-data; boundary=fz"})
        # traversal and odd file names
        name = rng.choice(
            [
                b"../../etc/passwd",
                b"/etc/passwd",
                b"..\\..\\win.ini",
                b"a\x00b.jpg",
                b"x" * 5000,
                "über/../é.jpg".encode(),
                b"%2e%2e%2fpasswd",
                b"",
                b'"quoted".jpg',
                b"a\r\nX-Injected: 1",
            ]
        )
        body = _multipart([(_disposition(b"image", name), data)])
        post("filename", content=body, headers={"content-type": "multipart/form-data; boundary=fz"})
        # bad top_k
        top_k = rng.choice(
            [
                "0",
                "-1",
                "abc",
                "1e3",
                "999999999999",
                "",
                " 2 ",
                "２",
                "2.0",
                "null",
                "[2]",
                "\x00",
                "9" * 500,
            ]
        )
        if rng.random() < 0.5:
            post("top_k", files={"image": ("a.jpg", data)}, data={"top_k": top_k})
        else:
            cases.append(
                (
                    "top_k",
                    {
                        "method": "POST",
                        "url": "/predict",
                        "content": data,
                        "params": {"top_k": top_k},
                        "headers": {"content-type": "image/jpeg"},
                    },
                )
            )
        # broken multipart
        variant = rng.randrange(7)
        headers = {"content-type": "multipart/form-data; boundary=fz"}
        if variant == 0:
            body = _multipart([(_disposition(b"image", b"a"), data)], end=False)
        elif variant == 1:
            body = _multipart([(_disposition(b"image", b"a"), data)], boundary=b"other")
        elif variant == 2:
            body = _multipart([(b"Content-Type: image/jpeg", data)])
        elif variant == 3:
            body = _multipart([(_disposition(b"image", b"a"), data)] * rng.randint(2, 40))
        elif variant == 4:
            body = _multipart([(_disposition(b"top_k"), b"1")] * 100)
            headers = {"content-type": "multipart/form-data; boundary=fz"}
        elif variant == 5:
            body = data
            headers = {"content-type": "multipart/form-data"}
        else:
            body = rng.randbytes(20) + _multipart([(_disposition(b"image", b"a"), data)])
        post("multipart", content=body, headers=headers)
        # bombs
        bomb = rng.choice([_png_declaring(100_000, 100_000), _png_declaring(7000, 7000), BOMB])
        if rng.random() < 0.3:
            post(
                "bomb",
                content=gzip.compress(b"\0" * 2_000_000),
                headers={"content-type": "image/png", "content-encoding": "gzip"},
            )
        else:
            post("bomb", content=bomb, headers={"content-type": "image/png"})

    # chunked bodies over the request cap (an async generator body is sent chunked by httpx)
    async def over_cap() -> AsyncIterator[bytes]:
        for _ in range(cap // 65536 + 4):
            yield b"\xff" * 65536

    for _ in range(max(2, per_kind // 20)):
        cases.append(
            (
                "chunked_over_cap",
                {
                    "method": "POST",
                    "url": "/predict",
                    "content": over_cap(),
                    "headers": {"content-type": "image/jpeg"},
                },
            )
        )
        head = (
            "POST /predict HTTP/1.1\r\nHost: f\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {cap + 1}\r\n\r\n"
        )
        raw.append(("declared_over_cap", head.encode() + b"x" * 1000, 5.0))

    # lying Content-Length over raw sockets
    jpeg = good["JPEG"]
    for i in range(max(4, per_kind // 5)):
        declared = len(jpeg) + rng.randint(1, 10_000)
        head = (
            f"POST /predict HTTP/1.1\r\nHost: f\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
        stall = 0.0 if i % 4 else 30.0  # some close at once, some stall past the read timeout
        raw.append(("lying_length_more", head + jpeg, stall))
        short = (
            f"POST /predict HTTP/1.1\r\nHost: f\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg) // 2}\r\n\r\n"
        ).encode()
        raw.append(("lying_length_less", short + jpeg, 5.0))
        raw.append(
            (
                "bad_length",
                b"POST /predict HTTP/1.1\r\nHost: f\r\nContent-Length: -5\r\n\r\nxx",
                0.0,
            )
        )
    return cases, raw


BOMB = b""  # filled in main() (a 25 MP PNG bomb takes a moment to build)


def send_raw(url: str, case: RawCase) -> int | None:
    """Send raw bytes; the status of the answer, or None if the server closed without one."""
    _, data, stall = case
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(data)
        if stall == 0.0:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        sock.settimeout(stall + 30 if stall else 30)
        try:
            reply = sock.recv(4096)
        except (TimeoutError, OSError):
            return None
    if not reply.startswith(b"HTTP/1.1 "):
        return None
    return int(reply.split(b" ")[1])


@contextlib.contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/painting.jpg", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def workers(server: localserve.Server) -> dict[str, Any]:
    names = {"artist_id": "entry", "artist_id_model": "model", "artist_id_explainer": "explainer"}
    found = localserve.service_workers(server)
    return {names.get(name, name): proc for name, proc in found.items()}


def rss(procs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {p.memory_info().rss / MB:.0f} MB" for k, p in sorted(procs.items()))


async def run_cases(url: str, cases: list[Case], concurrency: int) -> list[tuple[str, int | str]]:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one(kind: str, kwargs: dict[str, Any]) -> tuple[str, int | str]:
            async with gate:
                try:
                    r = await client.request(**kwargs)
                except httpx.HTTPError as exc:  # e.g. the server closed after an early 413
                    return kind, f"no answer ({type(exc).__name__})"
                except Exception as exc:  # the client refused to send it (h11 checks)
                    return kind, f"not sent ({type(exc).__name__})"
                return kind, r.status_code

        return list(await asyncio.gather(*(one(k, kw) for k, kw in cases)))


def main() -> None:
    global BOMB
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=EXPORT, help="exported BentoML model")
    parser.add_argument("--per-kind", type=int, default=60, help="cases per kind")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    BOMB = _png_bomb(5000)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="artist-id-fuzz-") as tmp:
        home = Path(tmp) / "bentoml"
        os.environ["BENTOML_HOME"] = str(home)
        os.environ["BENTOML_DO_NOT_TRACK"] = "true"
        from artist_id.packaging import import_with_genre
        from artist_id.serving_metadata import load_metadata

        tag = import_with_genre(args.export)  # + artist-id-genre.tar beside it
        import bentoml

        meta = load_metadata(Path(bentoml.models.get(tag).path) / "artist_id.json")
        env = {"BENTOML_HOME": str(home)}
        log = Path(tmp) / "serve.log"
        with (
            recording_server() as (url, hits),
            localserve.serve("artist_id.service:ArtistID", REPO, log, env, 300) as server,
        ):
            procs = workers(server)
            cases, raw = corpus(rng, args.per_kind, meta.limits.max_request_bytes, url)
            load = os.getloadavg()[0]
            print(f"model {tag}: {len(cases) + len(raw)} requests, load average {load:.1f}")
            print(f"RSS before: {rss(procs)}")
            start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                raw_results = pool.map(lambda c: (c[0], send_raw(server.url, c)), raw)
                results = asyncio.run(run_cases(server.url, cases, args.concurrency))
                results += [
                    (k, s if s is not None else "closed without answer") for k, s in raw_results
                ]
            elapsed = time.monotonic() - start
            import httpx

            good = httpx.post(
                f"{server.url}/predict",
                files={"image": ("a.jpg", _image("JPEG", (200, 150), 9))},
                timeout=60,
            )
            time.sleep(2)
            print(f"RSS after:  {rss(procs)}  ({elapsed:.0f} s)")
            alive = server.process.poll() is None

    by_status = collections.Counter(s for _, s in results)
    by_kind: dict[str, collections.Counter[int | str]] = collections.defaultdict(
        collections.Counter
    )
    for kind, status in results:
        by_kind[kind][status] += 1
    print("\nstatus counts:", ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items(), key=str)))
    for kind in sorted(by_kind):
        print(
            f"  {kind:20s} "
            + ", ".join(f"{s}: {n}" for s, n in sorted(by_kind[kind].items(), key=str))
        )
    server_errors = sum(n for s, n in by_status.items() if isinstance(s, int) and s >= 500)
    print(
        f"\n5xx: {server_errors}   URL fetches: {len(hits)}   "
        f"good request after: {good.status_code}   server alive: {alive}"
    )
    if server_errors or hits or good.status_code != 200 or not alive:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
