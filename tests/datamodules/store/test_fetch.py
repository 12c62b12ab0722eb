"""``datamodules.store.fetch``: resume, the server's answers, checksums; against the loopback server only."""

import hashlib
import re
import socket

import pytest

from datamodules.store import fetch as fetch_module
from datamodules.store.fetch import ChecksumError, DownloadError, check_checksum, fetch, file_digest, parse_checksum

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1 KiB, so that a connection cut after a few KiB leaves whole chunks written."""
    monkeypatch.setattr(fetch_module, "NETWORK_CHUNK", 1024)


def test_fetch_writes_the_file_and_no_partial_one(server, tmp_path):
    url = server.add("file.bin", DATA)
    target = tmp_path / "downloads" / "file.bin"
    assert fetch(url, target, progress=False) == target
    assert target.read_bytes() == DATA
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    assert server.ranges["file.bin"] == [None]


def test_fetch_keeps_an_existing_file_without_a_request(server, tmp_path):
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    target.write_bytes(b"already here")
    assert fetch(url, target, progress=False) == target
    assert target.read_bytes() == b"already here"
    assert server.total_requests == 0


def test_fetch_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(DATA[:3000])
    fetch(url, target, progress=False)
    assert target.read_bytes() == DATA
    assert server.ranges["file.bin"] == ["bytes=3000-"]
    assert not (tmp_path / "file.bin.part").exists()


def test_fetch_renames_a_complete_partial_file_on_416(server, tmp_path):
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(DATA)
    fetch(url, target, progress=False)
    assert target.read_bytes() == DATA
    assert server.ranges["file.bin"] == [f"bytes={len(DATA)}-"]
    assert not (tmp_path / "file.bin.part").exists()


def test_fetch_restarts_from_zero_when_the_server_ignores_the_range(server, tmp_path):
    url = server.add("file.bin", DATA)
    server.ignore_range.add("file.bin")
    target = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"\xff" * 3000)  # not the file's first bytes: must not be kept
    fetch(url, target, progress=False)
    assert target.read_bytes() == DATA
    assert server.ranges["file.bin"] == ["bytes=3000-"]


def test_fetch_names_the_http_status(server, tmp_path):
    target = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match=r"missing\.bin: the server answered 404 Not Found\.") as info:
        fetch(server.url("missing.bin"), target, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert not target.exists() and not (tmp_path / "missing.bin.part").exists()


def test_fetch_keeps_the_bytes_of_an_interrupted_download_and_resumes(server, tmp_path, small_chunks):
    url = server.add("file.bin", DATA)
    server.cut["file.bin"] = 5000
    target = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    with pytest.raises(DownloadError) as info:
        fetch(url, target, progress=False)
    kept = part.stat().st_size
    assert 0 < kept <= 5000
    assert part.read_bytes() == DATA[:kept]
    assert f"{kept:,} bytes are kept in {part}; run the same command again to resume." in str(info.value)
    assert not target.exists()

    del server.cut["file.bin"]
    fetch(url, target, progress=False)
    assert target.read_bytes() == DATA
    assert server.ranges["file.bin"] == [None, f"bytes={kept}-"]
    assert not part.exists()


def test_fetch_of_an_unreachable_server(tmp_path):
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = tmp_path / "file.bin"
    with pytest.raises(
        DownloadError, match=r"the download stopped \(ConnectionError: .*\); run the same command again\.$"
    ):
        fetch(f"http://127.0.0.1:{port}/file.bin", target, progress=False, timeout=5)
    assert not target.exists()


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_file_digest_and_check_checksum(tmp_path, algorithm):
    path = tmp_path / "file.bin"
    path.write_bytes(DATA)
    expected = hashlib.new(algorithm, DATA).hexdigest()
    assert file_digest(path, algorithm) == expected
    check_checksum(path, f"{algorithm}:{expected.upper()}", "the test", progress=False)
    assert path.read_bytes() == DATA


def test_check_checksum_deletes_a_wrong_file(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(DATA)
    actual = hashlib.md5(DATA).hexdigest()
    with pytest.raises(ChecksumError) as info:
        check_checksum(path, "md5:" + "0" * 32, "published on the test page", progress=False)
    message = str(info.value)
    assert f"file.bin: md5 {actual}, expected {'0' * 32} (published on the test page)" in message
    assert "it was deleted. Run the command again to download it again" in message
    assert not path.exists()


@pytest.mark.parametrize("checksum", ["d41d8cd98f00b204e9800998ecf8427e", "crc32:0badf00d", "md5:", ":abc"])
def test_parse_checksum_refuses_other_forms(checksum):
    with pytest.raises(ValueError, match=re.escape("expected '<md5|sha1|sha256>:<hex digest>'")):
        parse_checksum(checksum)


def test_parse_checksum_lowercases():
    assert parse_checksum("sha1:ABCDEF") == ("sha1", "abcdef")
