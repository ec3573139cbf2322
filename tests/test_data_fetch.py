"""`ganlab data fetch` against a local HTTP server (127.0.0.1) serving small tars built here."""
from __future__ import annotations

import argparse
import hashlib
import io
import re
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from data_fixtures import dogs_png_bytes, dogs_voc_xml
from ganlab.data import fetch as F
from ganlab.data.cli import register
from ganlab.errors import DataError


class DogsServer:
    """Serves `files` (name -> bytes) with HTTP Range support; `drop[name] = n` cuts the next response for
    `name` after n bytes of body (the connection is closed mid-file); `requests` logs (path, Range header)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                name = self.path.rsplit("/", 1)[-1]
                data = server.files.get(name)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start, status = 0, 200
                if rng:
                    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Type", "application/x-tar")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                cut = server.drop.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def dogs_server():
    server = DogsServer()
    yield server
    server.close()


def make_tar(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_300_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def spec(name: str, data: bytes, folder: str) -> F.Archive:
    return F.Archive(name, len(data), hashlib.sha256(data).hexdigest(), folder)


def small_dataset() -> tuple[bytes, bytes]:
    images = make_tar({f"Images/n00000001-Alpha_dog/n00000001_{i}.jpg": dogs_png_bytes(64, 48, i) * 3
                       for i in range(4)})
    annotations = make_tar({f"Annotation/n00000001-Alpha_dog/n00000001_{i}": dogs_voc_xml(64, 48, [(1, 1, 40, 40)])
                            .encode() for i in range(4)})
    return images, annotations


def serve_dataset(server: DogsServer) -> tuple[F.Archive, F.Archive]:
    images, annotations = small_dataset()
    server.files = {"images.tar": images, "annotation.tar": annotations}
    return spec("images.tar", images, "Images"), spec("annotation.tar", annotations, "Annotation")


def test_fetch_downloads_verifies_and_unpacks_then_does_nothing(dogs_server, tmp_path):
    archives = serve_dataset(dogs_server)
    dest = tmp_path / "dogs"
    messages: list[str] = []
    F.fetch(dest, archives, url_base=dogs_server.url, progress=False, say=messages.append)
    assert sorted(p.name for p in (dest / "Images" / "n00000001-Alpha_dog").iterdir())[0] == "n00000001_0.jpg"
    assert (dest / "Annotation" / "n00000001-Alpha_dog" / "n00000001_3").read_text().startswith("<annotation>")
    assert (dest / ".images.tar.done").exists() and (dest / ".annotation.tar.done").exists()
    assert not list(dest.glob("*.tar")) and not list(dest.glob("*.part")) and not list(dest.glob(".extract-*"))
    assert [r[0] for r in dogs_server.requests] == ["/mirror/images.tar", "/mirror/annotation.tar"]
    # the second call finds the data: no request at all
    messages.clear()
    F.fetch(dest, archives, url_base=dogs_server.url, progress=False, say=messages.append)
    assert len(dogs_server.requests) == 2
    assert all("already there" in m for m in messages) and len(messages) == 2


def test_dropped_connection_then_the_second_call_resumes(dogs_server, tmp_path):
    archives = serve_dataset(dogs_server)
    dest = tmp_path / "dogs"
    cut = 10_000
    dogs_server.drop["images.tar"] = cut
    with pytest.raises(DataError, match="interrupted at 10,000 of .* run the same command again to resume"):
        F.fetch(dest, archives, url_base=dogs_server.url, progress=False, retries=0, say=lambda s: None)
    assert (dest / "images.tar.part").stat().st_size == cut
    assert not (dest / "Images").exists()
    F.fetch(dest, archives, url_base=dogs_server.url, progress=False, say=lambda s: None)
    assert dogs_server.requests[1] == ("/mirror/images.tar", f"bytes={cut}-")  # resumed, not restarted
    assert len(list((dest / "Images" / "n00000001-Alpha_dog").iterdir())) == 4
    assert not (dest / "images.tar.part").exists()


def test_dropped_connection_is_retried_within_one_call(dogs_server, tmp_path):
    archives = serve_dataset(dogs_server)
    dogs_server.drop["annotation.tar"] = 3000
    messages: list[str] = []
    F.fetch(tmp_path, archives, url_base=dogs_server.url, progress=False, retries=2, backoff=0, say=messages.append)
    assert any("connection lost at 3,000" in m for m in messages)
    assert ("/mirror/annotation.tar", "bytes=3000-") in dogs_server.requests
    assert (tmp_path / "Annotation" / "n00000001-Alpha_dog" / "n00000001_0").exists()


def test_bad_checksum_is_deleted_with_a_clear_message(dogs_server, tmp_path):
    images, annotations = serve_dataset(dogs_server)
    wrong = F.Archive("images.tar", images.size, "0" * 64, "Images")
    with pytest.raises(DataError, match=r"images.tar: SHA-256 [0-9a-f]{64} does not match .*deleted"):
        F.fetch(tmp_path, [wrong], url_base=dogs_server.url, progress=False, say=lambda s: None)
    assert not list(tmp_path.iterdir())  # no .part, no .tar, nothing unpacked
    # a server file shorter than expected: the size check catches it, and deletes it
    longer = F.Archive("annotation.tar", annotations.size + 512, annotations.sha256, "Annotation")
    with pytest.raises(DataError, match=r"bytes instead of .*deleted"):
        F.fetch(tmp_path, [longer], url_base=dogs_server.url, progress=False, retries=1, backoff=0,
                say=lambda s: None)
    assert not list(tmp_path.iterdir())


def test_tar_with_parent_member_extracts_nothing(dogs_server, tmp_path):
    evil = make_tar({"Images/n00000001-Alpha_dog/ok.jpg": b"fine", "../evil.txt": b"gotcha"})
    dogs_server.files = {"images.tar": evil}
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"unsafe member '\.\./evil\.txt'"):
        F.fetch(dest, [spec("images.tar", evil, "Images")], url_base=dogs_server.url, progress=False,
                say=lambda s: None)
    assert not (tmp_path / "evil.txt").exists()
    assert not [p for p in tmp_path.rglob("*") if p.name == "evil.txt"]
    assert not (dest / "Images").exists() and not list(dest.iterdir())  # all or nothing; archive deleted


def test_tar_with_symlink_out_extracts_nothing(dogs_server, tmp_path):
    evil = make_tar({"Images/a.jpg": b"x"}, symlinks={"Images/link": "../../outside"})
    dogs_server.files = {"images.tar": evil}
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="unsafe member"):
        F.fetch(dest, [spec("images.tar", evil, "Images")], url_base=dogs_server.url, progress=False,
                say=lambda s: None)
    assert not list(dest.iterdir())


def test_mirror_url_from_env(monkeypatch):
    archive = F.OFFICIAL[0]
    monkeypatch.delenv(F.ENV_MIRROR, raising=False)
    assert F.url_of(archive) == "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar"
    monkeypatch.setenv(F.ENV_MIRROR, "http://mirror.example/dogs/")
    assert F.url_of(archive) == "http://mirror.example/dogs/images.tar"
    assert F.url_of(archive, "http://other/x") == "http://other/x/images.tar"
    assert F.OFFICIAL[0].size == 793579520 and F.OFFICIAL[1].sha256.startswith("662ed36f")


def test_data_placed_by_hand_is_left_alone(dogs_server, tmp_path):
    archives = serve_dataset(dogs_server)
    for folder in ("Images/x", "Annotation/x"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "f").write_text("mine")
    F.fetch(tmp_path, archives, url_base=dogs_server.url, progress=False, say=lambda s: None)
    assert dogs_server.requests == []


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ganlab")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_fetch_http_error_is_a_data_error(dogs_server, tmp_path, monkeypatch):
    monkeypatch.delenv(F.ENV_MIRROR, raising=False)
    dogs_server.files = {}  # 404 for everything
    with pytest.raises(DataError, match="HTTP 404"):
        run_cli(["data", "fetch", "--dest", str(tmp_path / "d"), "--url-base", dogs_server.url, "--no-progress"])
    monkeypatch.setenv(F.ENV_MIRROR, dogs_server.url)
    with pytest.raises(DataError, match="HTTP 404"):
        run_cli(["data", "fetch", "--dest", str(tmp_path / "d"), "--no-progress"])
    assert len(dogs_server.requests) == 2 and all(r[0] == "/mirror/images.tar" for r in dogs_server.requests)
