"""`ganlab data fetch`: download, verify and safely unpack the official Stanford Dogs archives.

* ``images.tar`` and ``annotation.tar`` from the dataset's site (sizes and SHA-256 from TensorFlow
  Datasets' checksum list, see docs/data.md); a mirror folder holding both files replaces the site with
  ``--url-base URL`` or ``$GANLAB_DOGS_MIRROR``.
* The download goes to ``DEST/<name>.part`` with a progress bar; an interrupted one resumes from where it
  stopped (an HTTP ``Range`` request; a server that ignores it sends the whole file again). A dropped
  connection is retried ``retries`` times, then the command stops and says to run it again.
* The finished file must have the expected size and SHA-256; otherwise it is deleted and the command says so.
* Extraction uses tarfile's ``data`` filter (leading ``/`` stripped; ``..``, links out and devices refused) into a
  temporary folder inside DEST, then moves ``Images/`` / ``Annotation/`` into place: an unsafe archive
  extracts nothing at all. A marker ``DEST/.<name>.done`` records success and the archive is deleted
  (``keep_archives`` keeps it).
* A second call finds the markers (or the folders, if the data was put there by hand) and does nothing,
  without touching the network.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ganlab.errors import DataError

ENV_MIRROR = "GANLAB_DOGS_MIRROR"
OFFICIAL_BASE = "http://vision.stanford.edu/aditya86/ImageNetDogs"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    name: str  # file name, also the last part of its URL
    size: int  # bytes
    sha256: str
    folder: str  # the top-level folder it unpacks to
    url: str = ""  # full URL; "" = <base>/<name>


OFFICIAL = (
    Archive("images.tar", 793579520, "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58", "Images"),
    Archive("annotation.tar", 21852160, "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd",
            "Annotation"),
)


def url_of(archive: Archive, url_base: str | None = None) -> str:
    """--url-base, else $GANLAB_DOGS_MIRROR, else the archive's own URL, else the official site."""
    base = url_base or os.environ.get(ENV_MIRROR, "").strip()
    if base:
        return f"{base.rstrip('/')}/{archive.name}"
    return archive.url or f"{OFFICIAL_BASE}/{archive.name}"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _bar(enabled: bool, name: str, total: int, done: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, \
        TransferSpeedColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True))
    bar.add_task(name, total=total, completed=done)
    bar.start()
    return bar


def download(url: str, part: Path, size: int, *, progress: bool = True, retries: int = 3, timeout: float = 60.0,
             backoff: float = 1.0, say: Callable[[str], None] = lambda s: None) -> None:
    """Bring `part` to `size` bytes from `url`, resuming what is already there (HTTP Range)."""
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > size:  # longer than the real file: nothing in it can be trusted
            part.unlink()
            have = 0
        if have == size:
            return
        headers = {"User-Agent": "ganlab-data-fetch"}
        if have:
            headers["Range"] = f"bytes={have}-"
        bar = None
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
                mode = "ab"
                if have and resp.status == 206:
                    start = _content_range_start(resp.headers.get("Content-Range", ""))
                    if start != have:
                        raise DataError(f"{url}: the server resumed at byte {start}, not {have}; delete {part} "
                                        "and run again")
                    say(f"resuming {part.name[:-5]} at {have:,} of {size:,} bytes")
                elif have:  # 200: the server ignored the Range header and sends the whole file
                    say(f"{url}: the server cannot resume; downloading from the start")
                    mode, have = "wb", 0
                bar = _bar(progress, part.name[:-5], size, have)
                with open(part, mode) as fh:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        fh.write(block)
                        if bar is not None:
                            bar.advance(bar.task_ids[0], len(block))
            now = part.stat().st_size
            if now < size:
                raise http.client.IncompleteRead(b"", size - now)
        except urllib.error.HTTPError as exc:
            bar = _stop(bar)
            if exc.code == 416 and have:  # nothing left to send: what we have is all there is; verify decides
                return
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason} (another mirror: --url-base URL or "
                            f"${ENV_MIRROR})") from None
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, ConnectionError, OSError) as exc:
            bar = _stop(bar)
            failures += 1
            now = part.stat().st_size if part.exists() else 0
            why = getattr(exc, "reason", None) or type(exc).__name__
            if failures > retries:
                raise DataError(f"download of {url} interrupted at {now:,} of {size:,} bytes ({why}); run the "
                                f"same command again to resume it") from None
            say(f"connection lost at {now:,} of {size:,} bytes ({why}); retrying ({failures}/{retries})")
            time.sleep(backoff * min(2 ** (failures - 1), 30))
        finally:
            _stop(bar)


def _stop(bar) -> None:
    if bar is not None:
        bar.stop()
    return None


def _content_range_start(value: str) -> int:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def verify(path: Path, size: int, sha256: str, name: str | None = None) -> None:
    """Size and SHA-256 as expected, or delete the file and raise DataError saying so."""
    name = name or path.name
    actual = path.stat().st_size
    if actual != size:
        path.unlink()
        raise DataError(f"{name}: {actual:,} bytes instead of {size:,}; the bad file was deleted, run the "
                        f"command again (or use another mirror: --url-base URL or ${ENV_MIRROR})")
    digest = sha256_of(path)
    if digest != sha256.lower():
        path.unlink()
        raise DataError(f"{name}: SHA-256 {digest} does not match the expected {sha256}; the bad file was "
                        f"deleted, run the command again (or use another mirror: --url-base URL or ${ENV_MIRROR})")


def _check_members(tf: tarfile.TarFile, dest: Path) -> None:
    """The `data` filter's main rules, for Pythons whose tarfile lacks filters (3.11.0-3.11.3)."""
    base = dest.resolve()
    for m in tf.getmembers():
        target = (base / m.name).resolve()
        if os.path.isabs(m.name) or (target != base and base not in target.parents):
            raise DataError(f"unsafe member {m.name!r} (outside the destination)")
        if m.issym() or m.islnk():
            link = (target.parent / m.linkname).resolve() if m.issym() else (base / m.linkname).resolve()
            if base not in link.parents:
                raise DataError(f"unsafe link {m.name!r} -> {m.linkname!r}")
        if m.isdev():
            raise DataError(f"unsafe device member {m.name!r}")


def _move_into(src: Path, dst: Path) -> None:
    """Move `src` to `dst`, merging into folders that already exist."""
    if dst.is_dir() and src.is_dir() and not dst.is_symlink():
        for child in sorted(src.iterdir()):
            _move_into(child, dst / child.name)
        src.rmdir()
    else:
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)


def extract(archive: Path, dest: Path) -> list[str]:
    """Unpack `archive` into `dest` safely (all or nothing); the top-level names it put there."""
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=f".extract-{archive.name}-"))
    try:
        try:
            with tarfile.open(archive) as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter="data")
                else:  # pragma: no cover - old 3.11
                    _check_members(tf, tmp)
                    tf.extractall(tmp)
        except tarfile.FilterError as exc:
            member = getattr(getattr(exc, "tarinfo", None), "name", "?")
            raise DataError(f"{archive.name}: unsafe member {member!r} ({exc}); nothing was extracted and the "
                            "archive was deleted") from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DataError(f"{archive.name}: cannot unpack ({exc}); the archive was deleted, run the command "
                            "again") from None
        names = sorted(p.name for p in tmp.iterdir())
        for name in names:
            _move_into(tmp / name, dest / name)
        return names
    except DataError:
        archive.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _present(dest: Path, archive: Archive) -> str | None:
    """Why this archive needs no work, or None."""
    if (dest / f".{archive.name}.done").exists():
        return f"{archive.folder}/ is already there (fetched before)"
    folder = dest / archive.folder
    if folder.is_dir() and any(folder.iterdir()):
        return f"{archive.folder}/ is already there (not fetched by ganlab; --force downloads anyway)"
    return None


def fetch(dest: str | os.PathLike, archives: tuple[Archive, ...] | list[Archive] = OFFICIAL, *,
          url_base: str | None = None, progress: bool = True, retries: int = 3, timeout: float = 60.0,
          keep_archives: bool = False, force: bool = False, backoff: float = 1.0,
          say: Callable[[str], None] = print) -> Path:
    """Download, verify and unpack each archive into `dest` unless it is already there. Returns `dest`."""
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        reason = None if force else _present(dest, archive)
        if reason:
            say(f"{archive.name}: {reason}")
            continue
        path = dest / archive.name
        if not path.exists():
            part = dest / f"{archive.name}.part"
            url = url_of(archive, url_base)
            say(f"{archive.name}: downloading {url} ({archive.size:,} bytes)")
            download(url, part, archive.size, progress=progress, retries=retries, timeout=timeout,
                     backoff=backoff, say=say)
            verify(part, archive.size, archive.sha256, archive.name)
            os.replace(part, path)
        else:
            verify(path, archive.size, archive.sha256)
        names = extract(path, dest)
        marker = {"archive": archive.name, "size": archive.size, "sha256": archive.sha256, "unpacked": names}
        (dest / f".{archive.name}.done").write_text(json.dumps(marker, indent=2) + "\n")
        if not keep_archives:
            path.unlink()
        say(f"{archive.name}: unpacked {', '.join(n + '/' for n in names)} into {dest}")
    return dest
