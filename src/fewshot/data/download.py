"""Fetch the Omniglot release zips (with MD5 checks), or copy them from a local folder."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

from fewshot.files import write_atomically

logger = logging.getLogger(__name__)

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OMNIGLOT_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
# Copied from a local source when present there; never downloaded.
OMNIGLOT_OPTIONAL = ("images_background_small1.zip", "images_background_small2.zip")


def fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into the file ``dest`` (the only network access of the library)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except urllib.error.URLError as err:
        reason = getattr(err, "reason", err)
        raise ConnectionError(f"{url}: download failed ({reason}); fetch it by hand and pass source=<folder>") from err


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_omniglot(root: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """Put ``images_background.zip`` and ``images_evaluation.zip`` in ``root``; returns ``root``.

    Downloads from the official release (``OMNIGLOT_URL``) and checks the MD5s, or,
    with ``source=<folder>``, copies the zips (and the reduced background sets, when
    there) from that folder without checksums: locally rebuilt zips may hold the same
    images in different bytes. Files already in ``root`` are kept. Every file is
    written under a temporary name and renamed, so none is ever half-written.
    """
    root = Path(root).expanduser()
    if source is not None:
        source = Path(source).expanduser()
        if not source.is_dir():
            raise FileNotFoundError(f"{source}: source folder not found")
        for name in OMNIGLOT_MD5:
            if not (source / name).is_file():
                raise FileNotFoundError(f"{source / name}: not found in the source folder")
    names = list(OMNIGLOT_MD5) + [n for n in OMNIGLOT_OPTIONAL if source is not None and (source / n).is_file()]
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            dest = root / name
            if dest.exists():
                logger.info("%s already present, kept", dest)
            elif source is not None:
                write_atomically(dest, partial(_copy, source / name))
            else:
                write_atomically(dest, partial(_fetch_checked, OMNIGLOT_URL + name, md5=OMNIGLOT_MD5[name]))
    except BaseException:
        if created and not any(root.iterdir()):  # leave no empty folder behind
            root.rmdir()
        raise
    return root


def _copy(source: Path, tmp: Path) -> None:
    shutil.copyfile(source, tmp)


def _fetch_checked(url: str, tmp: Path, md5: str) -> None:
    logger.info("downloading %s", url)
    fetch(url, tmp)
    actual = md5sum(tmp)
    if actual != md5:
        raise ValueError(f"{url}: checksum mismatch (MD5 {actual}, expected {md5}); the download was discarded")
