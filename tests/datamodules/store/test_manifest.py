"""``datamodules.store.manifest``: MANIFEST.tsv written, read back and compared with a folder."""

import hashlib

import pytest

from datamodules.store.manifest import (
    HEADER,
    MANIFEST,
    Entry,
    compare,
    dataset_files,
    read_manifest,
    size_on_disk,
    write_manifest,
)

FILES = {
    "a.txt": b"first file\n",
    "images/b.png": b"\x89PNG not really" * 10,
    "images/deeper/c.bin": bytes(range(256)),
}


@pytest.fixture
def folder(tmp_path):
    """A dataset folder with three files, plus the files a manifest leaves out: README.md, hidden ones."""
    root = tmp_path / "dataset"
    for relative, data in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "README.md").write_text("notes\n")
    (root / ".cache").write_text("hidden\n")
    (root / ".hidden_folder").mkdir()
    (root / ".hidden_folder" / "x.txt").write_text("hidden\n")
    return root


def test_dataset_files_leave_out_the_manifest_readme_and_hidden_files(folder):
    (folder / MANIFEST).write_text(HEADER + "\n")
    assert dataset_files(folder) == sorted(FILES)


def test_write_and_read_round_trip(folder):
    target = write_manifest(folder, progress=False)
    assert target == folder / MANIFEST
    lines = target.read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[1] == f"a.txt\t{len(FILES['a.txt'])}\t{hashlib.sha256(FILES['a.txt']).hexdigest()}"
    expected = {path: Entry(len(data), hashlib.sha256(data).hexdigest()) for path, data in FILES.items()}
    assert read_manifest(target) == expected
    # written through a temporary file that is gone
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(f".{MANIFEST}")) == []
    assert compare(folder, read_manifest(target), progress=False) == []


def test_compare_reports_missing_size_and_content_changes(folder):
    entries = read_manifest(write_manifest(folder, progress=False))
    (folder / "a.txt").unlink()
    (folder / "images" / "b.png").write_bytes(b"shorter")
    changed = bytearray(FILES["images/deeper/c.bin"])
    changed[10] ^= 0xFF  # same size, other bytes
    (folder / "images" / "deeper" / "c.bin").write_bytes(bytes(changed))
    assert compare(folder, entries, progress=False) == [
        f"missing: {folder / 'a.txt'}",
        f"corrupt: {folder / 'images' / 'b.png'} has 7 bytes, expected {len(FILES['images/b.png']):,}",
        f"corrupt: {folder / 'images' / 'deeper' / 'c.bin'} has another SHA-256 than "
        f"{hashlib.sha256(FILES['images/deeper/c.bin']).hexdigest()}",
    ]


def test_read_manifest_without_header_and_with_blank_lines(tmp_path):
    digest = "ab" * 32
    path = tmp_path / "m.tsv"
    path.write_text(f"x/y.png\t12\t{digest}\n\n")
    assert read_manifest(path) == {"x/y.png": Entry(12, digest)}


@pytest.mark.parametrize(
    "line",
    [
        "x.png\t12",  # two fields
        "x.png\ttwelve\t" + "ab" * 32,  # size not a number
        "x.png\t12\t" + "ab" * 31,  # short digest
        "x.png 12 " + "ab" * 32,  # spaces, not tabs
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path, line):
    path = tmp_path / "m.tsv"
    path.write_text(f"{HEADER}\nok.png\t1\t{'cd' * 32}\n{line}\n")
    with pytest.raises(ValueError) as info:
        read_manifest(path)
    assert str(info.value) == f"{path}:3: expected 'path<TAB>size<TAB>sha256', got {line!r}."


def test_size_on_disk_from_the_manifest_or_a_walk(folder):
    total = sum(len(data) for data in FILES.values())
    assert size_on_disk(folder) == total  # no manifest: a walk of the dataset files
    write_manifest(folder, progress=False)
    (folder / "a.txt").write_bytes(b"x" * 1000)  # the manifest's sizes count, not the file's
    assert size_on_disk(folder) == total
    (folder / MANIFEST).write_text("not a manifest\n")  # unreadable: a walk again
    assert size_on_disk(folder) == total - len(FILES["a.txt"]) + 1000
