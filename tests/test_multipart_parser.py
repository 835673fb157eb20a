"""The streaming multipart parser behind uploads: any chunking gives the same parts."""

from __future__ import annotations

import random

import httpx
import pytest

from api.multipart import MultipartError, MultipartParser, boundary_of


def encode(files: dict, data: dict) -> tuple[bytes, str]:
    req = httpx.Request("POST", "http://x/", files=files, data=data)
    return req.read(), req.headers["content-type"]


def parse(body: bytes, ctype: str, sizes: list[int]) -> list[tuple]:
    parser = MultipartParser(boundary_of(ctype))
    parts: list[list] = []
    i = 0
    while i < len(body):
        n = random.choice(sizes)
        for kind, value in parser.feed(body[i : i + n]):
            if kind == "part":
                parts.append([value, b""])
            elif kind == "data":
                parts[-1][1] += value
        i += n
    parser.close()
    return [(h.name, h.filename, h.content_type, data) for h, data in parts]


def test_any_chunking_yields_the_same_parts():
    tricky = b"\r\n--" + b"-" * 70 + b"\r\n\r\n" + bytes(range(256)) * 300 + b"\r\n--"
    body, ctype = encode(
        {"file": ("Отчёт 1.bin", tricky, "application/x-thing")},
        {"message": "12", "caption": "Скрин"},
    )
    rnd = random.Random(7)
    random.seed(rnd.random())
    expected = [
        ("message", None, None, b"12"),
        ("caption", None, None, "Скрин".encode()),
        ("file", "Отчёт 1.bin", "application/x-thing", tricky),
    ]
    for sizes in ([1], [2, 3, 5], [7, 64, 1000], [65536], [len(body)]):
        assert parse(body, ctype, sizes) == expected, sizes


def test_malformed_bodies_raise():
    body, ctype = encode({"file": ("a.txt", b"abc", "text/plain")}, {})
    with pytest.raises(MultipartError):
        parse(body[:-10], ctype, [100])  # cut before the closing boundary
    with pytest.raises(MultipartError):
        parse(b"x" * 70000, ctype, [4096])  # no boundary at all
    with pytest.raises(MultipartError):
        boundary_of("application/json")
    with pytest.raises(MultipartError):
        boundary_of("multipart/form-data")
    bad_headers = b"--b\r\nNo-Colon-Here\r\n\r\nx\r\n--b--\r\n"
    with pytest.raises(MultipartError):
        parse(bad_headers, "multipart/form-data; boundary=b", [10])
    no_disposition = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
    with pytest.raises(MultipartError):
        parse(no_disposition, "multipart/form-data; boundary=b", [10])


def test_preamble_epilogue_and_quoted_boundary():
    body = (
        b'preamble\r\n--q b\r\nContent-Disposition: form-data; name="f"; filename="x\\"y.txt"\r\n\r\n'
        b"data\r\n--q b--\r\nepilogue"
    )
    assert parse(body, 'multipart/form-data; boundary="q b"', [3]) == [
        ("f", 'x"y.txt', None, b"data")
    ]
