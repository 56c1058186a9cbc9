"""Downloads into the data-set cache: streamed, checksum-verified, installed atomically.

A data set's files come from one :class:`Source`: a URL per file, or one archive (zip or
tar) holding them. :func:`install` streams every download to a staging folder next to the
cache folder while hashing it, checks the published checksum (SHA-256 where the publisher or a
trusted record gives one, MD5 where that is what the publisher publishes), extracts the needed
archive members, and only then moves the files into place: a checksum mismatch, a connection
cut short or a missing member leaves nothing in the cache. Every installed file's SHA-256 is
recorded in the folder's manifest (``.recsys-manifest.json``), so :func:`verify_folder` can
check a cache later, including files for which no checksum is published (those are pinned on
first download; the log says so).

``$RECSYS_DATA_MIRROR`` (a base URL) sends every download to a mirror instead: the official
``https://host/path`` becomes ``<mirror>/host/path`` (the same checksums apply).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

MANIFEST = ".recsys-manifest.json"
CHUNK = 1 << 20
#: Staging folders older than this (seconds) are left-overs of a killed process: removed.
STALE_AFTER = 24 * 3600


@dataclass(frozen=True)
class Source:
    """Where a data set's files come from and how to check them.

    Parameters
    ----------
    url : str
        The archive's URL, or (``archive=None``) a base URL to which each file name is appended.
    checksums : dict
        Cached file name -> its published checksum (``"sha256:<hex>"`` or ``"md5:<hex>"``),
        or ``None`` where none is published.
    archive : {"zip", "tar"}, optional
        The URL is one archive holding the files (members found by base name, or by
        ``members``).
    archive_checksum : str, optional
        The archive's published checksum.
    members : dict, optional
        Cached file name -> member path inside the archive.
    fix : callable, optional
        ``fix(name, path)`` normalises a downloaded file in place before its checksum is checked
        (e.g. a header line the published checksum was computed without).
    """

    url: str
    checksums: dict[str, str | None]
    archive: str | None = None
    archive_checksum: str | None = None
    members: dict[str, str] = field(default_factory=dict)
    fix: Callable[[str, Path], None] | None = None

    @property
    def files(self) -> list[str]:
        return list(self.checksums)

    def present(self, folder: Path) -> bool:
        return all((folder / name).is_file() for name in self.checksums)


def mirrored(url: str) -> str:
    """``url`` rewritten to ``$RECSYS_DATA_MIRROR`` when that is set."""
    mirror = os.environ.get("RECSYS_DATA_MIRROR")
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _algos(checksum: str | None) -> set[str]:
    """The hash algorithms to compute: SHA-256 (the manifest's) and the checksum's own."""
    return {"sha256"} | ({checksum.partition(":")[0]} if checksum else set())


def _verify(name: str, url: str, checksum: str | None, digests: dict[str, str]) -> None:
    """The one checksum error: ``digests`` (algorithm -> hex) against ``checksum``."""
    if checksum is None:
        return
    algo, _, expected = checksum.partition(":")
    if digests[algo] != expected.lower():
        raise OSError(f"checksum mismatch for {name} downloaded from {url}: the published file "
                      f"has {checksum}, this one {algo}:{digests[algo]}. Nothing was written.")


def file_digests(path: Path, algos: set[str]) -> dict[str, str]:
    """Hex digests of a file under every algorithm of ``algos``, in one pass."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


def stream(url: str, target: Path, checksum: str | None = None,
           show_progress: bool | None = None) -> dict[str, str]:
    """Download ``url`` to ``target`` in chunks, hashing as it goes; returns the digests
    (SHA-256, and the checksum's algorithm).

    Raises ``OSError`` when the connection ends before the announced length or the published
    ``checksum`` does not match (``target`` is left for the caller's staging folder to drop).
    """
    url = mirrored(url)
    logger.info("downloading %s", url)
    name = Path(urllib.parse.urlsplit(url).path).name
    hashers = {a: hashlib.new(a) for a in _algos(checksum)}
    received = 0
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed URLs)
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        with open(target, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                             desc=name, disable=None if show_progress is None
                                             else not show_progress) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except Exception as err:  # http.client.IncompleteRead is no OSError
                    raise OSError(f"the download of {url} was interrupted after {received} "
                                  f"bytes ({err!r})") from err
                if not block:
                    break
                out.write(block)
                for h in hashers.values():
                    h.update(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise OSError(f"the download of {url} was interrupted: {received} of {total} bytes")
    digests = {a: h.hexdigest() for a, h in hashers.items()}
    _verify(name, url, checksum, digests)
    return digests


def _extract(source: Source, archive: Path, staging: Path) -> None:
    """Copy the needed members of ``archive`` into ``staging`` under their cached names."""
    if source.archive == "zip":
        with zipfile.ZipFile(archive) as zf:
            names = [m for m in zf.namelist() if not m.endswith("/")]
            for name in source.checksums:
                member = _member(source, name, names)
                with zf.open(member) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    elif source.archive == "tar":
        with tarfile.open(archive, "r:*") as tf:
            infos = {m.name: m for m in tf.getmembers() if m.isfile()}
            for name in source.checksums:
                member = _member(source, name, list(infos))
                src = tf.extractfile(infos[member])
                with src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    else:
        raise ValueError(f"unknown archive type {source.archive!r}")


def _member(source: Source, name: str, names: list[str]) -> str:
    wanted = source.members.get(name)
    hits = [m for m in names if (m == wanted if wanted else Path(m).name == name)]
    if len(hits) != 1:
        raise OSError(f"{source.url} holds {len(hits)} members named {wanted or name} "
                      "(expected one): not the published archive")
    return hits[0]


def _clean_stale(root: Path, folder_name: str) -> None:
    for old in root.glob(f".{folder_name}.*"):
        try:
            if old.is_dir() and time.time() - old.stat().st_mtime > STALE_AFTER:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def install(source: Source, folder: Path, show_progress: bool | None = None) -> None:
    """Download, verify and move ``source``'s files into ``folder`` (see the module
    docstring); on any failure nothing is left in ``folder`` or beside it."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(folder.parent, folder.name)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        downloaded, hashed = {}, {}  # hashed: files whose digests the download gave
        if source.archive:
            archive = staging / ".archive"
            downloaded[source.url] = stream(source.url, archive, source.archive_checksum,
                                            show_progress)["sha256"]
            _extract(source, archive, staging)
            archive.unlink()
        else:
            for name, checksum in source.checksums.items():
                url = source.url + name
                digests = stream(url, staging / name, None if source.fix else checksum,
                                 show_progress)
                downloaded[url] = digests["sha256"]
                if source.fix is None:  # checked in the stream already
                    hashed[name] = digests
        manifest = {"source": source.url, "mirror": os.environ.get("RECSYS_DATA_MIRROR"),
                    "downloads": downloaded, "files": {}}
        for name, checksum in source.checksums.items():
            path = staging / name
            digests = hashed.get(name)
            if digests is None:  # an archive member, or a file the fix changed
                if source.fix is not None:
                    source.fix(name, path)
                digests = file_digests(path, _algos(checksum))
                _verify(name, source.url, checksum, digests)
            if checksum is None and source.archive_checksum is None:
                logger.warning("%s from %s has no published checksum: its SHA-256 is recorded "
                               "in %s and checked from now on", name, source.url, MANIFEST)
            manifest["files"][name] = "sha256:" + digests["sha256"]
        folder.mkdir(parents=True, exist_ok=True)
        for name in source.checksums:
            os.replace(staging / name, folder / name)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(staging / MANIFEST, folder / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify_folder(source: Source, folder: Path) -> None:
    """Check the cached files against their published checksums, else against the SHA-256
    the manifest recorded at download; ``OSError`` names the first file that differs."""
    recorded = {}
    manifest = Path(folder) / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("files", {})
    for name, checksum in source.checksums.items():
        checksum = checksum or recorded.get(name)
        if checksum is None:
            logger.warning("%s: no published checksum and no manifest (placed by hand?): not "
                           "verified", folder / name)
            continue
        algo, _, expected = checksum.partition(":")
        if file_digests(Path(folder) / name, {algo})[algo] != expected.lower():
            raise OSError(f"{Path(folder) / name} does not match its checksum {checksum}")
