"""Name matching, layout discovery and ingest (the ``ingest`` stage's library)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from artist_id import images
from artist_id.ingest import IngestResult, flat_prefix, ingest, match_folders, publish
from artist_id.manifest import MANIFEST_COLUMNS, DatasetError, fix_mojibake, name_key, slug
from tests.conftest import REAL_SAMPLE, mojibake, write_kaggle

LIMITS = images.DecodeLimits(max_bytes=5_000_000, max_pixels=4_000_000)


def run_ingest(source: Path, out: Path, **kwargs: Any) -> IngestResult:
    """ingest + publish, as the stage does (reports beside ``out``)."""
    options = {"max_side": 64, "jpeg_quality": 90, "limits": LIMITS, **kwargs}
    result = ingest(source, out, **options)
    publish(result, out, out.parent / f"{out.name}-reports")
    return result


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------ names


def test_mojibake_folder_is_repaired() -> None:
    assert mojibake("Albrecht Dürer") == "Albrecht Du╠êrer"
    assert fix_mojibake("Albrecht_Du╠êrer") == "Albrecht_Dürer"
    assert fix_mojibake("Vincent_van_Gogh") == "Vincent_van_Gogh"


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("Albrecht_Du╠êrer", "Albrecht Dürer"),
        ("Albrecht_Durer", "Albrecht Dürer"),
        ("Vincent_van_Gogh", "Vincent van Gogh"),
        ("Pierre-Auguste_Renoir", "Pierre-Auguste Renoir"),
        ("henri_de_TOULOUSE-lautrec", "Henri de Toulouse-Lautrec"),
    ],
)
def test_name_key_matches_folder_to_csv_name(folder: str, name: str) -> None:
    assert name_key(folder) == name_key(name)


def test_match_folders_maps_every_folder() -> None:
    mapping = match_folders(
        ["Albrecht_Du╠êrer", "Vincent_van_Gogh"], ["Vincent van Gogh", "Albrecht Dürer", "X Y"]
    )
    assert mapping == {"Albrecht_Du╠êrer": "Albrecht Dürer", "Vincent_van_Gogh": "Vincent van Gogh"}


def test_unmatched_folder_is_an_error_that_names_it() -> None:
    with pytest.raises(DatasetError, match=r"'Vincent_van_Gohg'.*closest: Vincent van Gogh"):
        match_folders(["Vincent_van_Gohg"], ["Vincent van Gogh", "Edgar Degas"])


def test_slug_and_flat_prefix() -> None:
    assert slug("Albrecht Dürer") == "Albrecht_Durer"
    assert slug("Albrecht_Du╠êrer") == "Albrecht_Durer"
    assert flat_prefix("Vincent_van_Gogh_12") == "Vincent_van_Gogh"
    assert flat_prefix("weird") == "weird"


def test_slug_error_names_the_text_it_could_not_use() -> None:
    with pytest.raises(DatasetError, match="'東京'"):
        slug("東京")


@pytest.mark.skipif(not REAL_SAMPLE.exists(), reason="../shared/real-sample is not present")
def test_real_csv_names_are_all_distinct_keys() -> None:
    names = pd.read_csv(REAL_SAMPLE / "artists.csv", dtype=str)["name"]
    folders = [n.replace(" ", "_") for n in names]
    folders[list(names).index("Albrecht Dürer")] = mojibake("Albrecht Dürer").replace(" ", "_")
    assert len(match_folders(folders, list(names))) == 50


# ----------------------------------------------------------------- ingest


def check_manifest(manifest: pd.DataFrame, expected: dict[str, int]) -> None:
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest.groupby("artist").size().to_dict() == expected
    ok = manifest[manifest["status"] == "ok"]
    assert ok["image_id"].is_unique
    for row in ok.itertuples():
        assert Path(row.path).is_file()
        assert len(row.sha256) == 64 and len(row.phash) == 16
        assert max(int(row.width), int(row.height)) <= 64


def test_ingest_nested_layout_with_mojibake_folder(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = tree_digest(kaggle_dir)
    result = run_ingest(kaggle_dir, Path("raw"))
    check_manifest(result.manifest, {"Albrecht Dürer": 4, "Edgar Degas": 5, "Vincent van Gogh": 6})
    assert result.summary["layout"] == "nested"
    assert result.summary["quarantined"] == 0
    assert (Path("raw/images/Albrecht_Durer/Albrecht_Durer_1.jpg")).is_file()
    assert Path("raw/artists.csv").read_bytes() == (kaggle_dir / "artists.csv").read_bytes()
    assert tree_digest(kaggle_dir) == before, "the source must never be modified"


def test_ingest_zip_equals_folder(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "best-artworks.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(kaggle_dir.rglob("*")):
            if p.is_file():
                zf.write(p, "archive/" + p.relative_to(kaggle_dir).as_posix())
    monkeypatch.chdir(tmp_path)
    a = run_ingest(kaggle_dir, Path("a"))
    b = run_ingest(archive, Path("b"))
    cols = ["image_id", "artist", "sha256", "phash", "width", "height", "status"]
    pd.testing.assert_frame_equal(a.manifest[cols], b.manifest[cols])
    assert tree_digest(Path("a/images")) == tree_digest(Path("b/images"))


def test_ingest_flat_resized_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_kaggle(tmp_path / "flat", {"Edgar Degas": 3, "Pablo Picasso": 2}, layout="flat")
    monkeypatch.chdir(tmp_path)
    result = run_ingest(root, Path("raw"))
    assert result.summary["layout"] == "flat"
    check_manifest(result.manifest, {"Edgar Degas": 3, "Pablo Picasso": 2})


def test_corrupt_files_are_quarantined_and_the_run_goes_on(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = kaggle_dir / "images" / "images" / "Edgar_Degas"
    (folder / "Edgar_Degas_90.jpg").write_bytes(b"")
    (folder / "Edgar_Degas_91.jpg").write_text("this is not an image")
    good = (folder / "Edgar_Degas_1.jpg").read_bytes()
    (folder / "Edgar_Degas_92.jpg").write_bytes(good[: len(good) // 2])
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    monkeypatch.chdir(tmp_path)
    result = run_ingest(kaggle_dir, Path("raw"))
    m = result.manifest.set_index("image_id")
    assert m.loc["Edgar_Degas_90", "reason"] == "empty"
    assert m.loc["Edgar_Degas_91", "reason"] == "not_an_image"
    assert m.loc["Edgar_Degas_92", "reason"] == "truncated"
    assert (m.loc[["Edgar_Degas_90", "Edgar_Degas_91", "Edgar_Degas_92"], "path"] == "").all()
    assert result.summary["quarantined"] == 3 and result.summary["ok"] == 15
    assert result.summary["skipped_hidden_files"] == 1
    assert sorted(result.quarantine["source_path"]) == [
        f"images/images/Edgar_Degas/Edgar_Degas_9{i}.jpg" for i in range(3)
    ]


def test_unknown_artist_folder_stops_ingest(kaggle_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(
        kaggle_dir / "images" / "images" / "Edgar_Degas",
        kaggle_dir / "images" / "images" / "Claude_Monnet",
    )
    with pytest.raises(DatasetError, match="Claude_Monnet"):
        ingest(kaggle_dir, tmp_path / "raw", max_side=64, jpeg_quality=90, limits=LIMITS)


def test_missing_source_has_a_helpful_message(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist.*dvc repro sample"):
        ingest(tmp_path / "nope", tmp_path / "raw", max_side=64, jpeg_quality=90, limits=LIMITS)


@pytest.mark.skipif(not REAL_SAMPLE.exists(), reason="../shared/real-sample is not present")
def test_ingest_real_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_ingest(REAL_SAMPLE, Path("raw"), max_side=128)
    assert result.summary["layout"] == "nested"
    assert result.summary["artists_in_csv"] == 50
    assert set(result.manifest["artist"]) == {"Vincent van Gogh", "Edgar Degas", "Pablo Picasso"}
    assert (result.manifest["status"] == "ok").all()
    assert "L" in set(result.manifest["source_mode"]), "two Picasso files are greyscale"


# ----------------------------------------------------------------- odd files (issue 13)


def lstat_digest(root: Path) -> dict[str, str]:
    """The source as it is on disk, links and special files included, nothing followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                out[rel] = f"link->{path.readlink()}"
            elif stat.S_ISREG(mode):
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif not stat.S_ISDIR(mode):
                out[rel] = f"special {stat.S_IFMT(mode)}"
    return out


def odd_source(kaggle_dir: Path, outside: Path) -> dict[str, str]:
    """Add every odd entry of the issue to Edgar Degas' folder; return name -> reason."""
    folder = kaggle_dir / "images" / "images" / "Edgar_Degas"
    good = (folder / "Edgar_Degas_1.jpg").read_bytes()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(good)
    bad_name = os.fsencode(folder) + b"/Edgar_Degas_\xff\xfe.jpg"  # not valid UTF-8
    fd = os.open(bad_name, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, good)
    os.close(fd)
    (folder / "Edgar_Degas_93.jpg").symlink_to("/etc/passwd")
    (folder / "Edgar_Degas_94.jpg").symlink_to(outside / "secret.jpg")
    (folder / "Edgar_Degas_95.jpg").symlink_to(outside / "missing.jpg")  # dangling
    os.mkfifo(folder / "Edgar_Degas_96.jpg")  # reading it would block for ever
    (folder / "y.jpg").mkdir()  # a directory named like an image, with an image inside
    (folder / "y.jpg" / "Edgar_Degas_97.jpg").write_bytes(good)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(folder / "Edgar_Degas_98.jpg")
    (folder / "linked_dir").symlink_to(outside, target_is_directory=True)
    return {
        "Edgar_Degas_\\xff\\xfe.jpg": "bad_file_name",
        "Edgar_Degas_93.jpg": "symlink",
        "Edgar_Degas_94.jpg": "symlink",
        "Edgar_Degas_95.jpg": "symlink",
        "Edgar_Degas_96.jpg": "not_a_regular_file",
        "y.jpg/Edgar_Degas_97.jpg": "misplaced",
        "Edgar_Degas_98.jpg": "too_small",
        "linked_dir": "symlink",
    }


def test_odd_files_are_quarantined_each_with_its_reason_and_nothing_is_lost(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from artist_id.config import ValidateParams
    from artist_id.expectations import validate_dataset

    expected = odd_source(kaggle_dir, tmp_path / "outside")
    before = lstat_digest(kaggle_dir)
    monkeypatch.chdir(tmp_path)
    result = run_ingest(kaggle_dir, Path("raw"), min_side=32)

    prefix = "images/images/Edgar_Degas/"
    quarantine = result.quarantine
    quarantined = dict(zip(quarantine["source_path"], quarantine["reason"], strict=True))
    assert quarantined == {prefix + name: reason for name, reason in expected.items()}
    # every good image is still there, and nothing from outside the source came in
    assert result.summary["ok"] == 15
    secret = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    shas = set(result.manifest.loc[result.manifest["reason"] != "too_small", "sha256"])
    assert secret not in shas and shas - {""} == set(
        result.manifest.loc[result.manifest["status"] == "ok", "sha256"]
    )
    assert result.summary["directories_named_like_images"] == [prefix + "y.jpg"]
    # the manifest with the escaped name was written, the source is untouched
    written = pd.read_csv("raw/manifest.csv", dtype=str, keep_default_na=False)
    assert prefix + "Edgar_Degas_\\xff\\xfe.jpg" in set(written["source_path"])
    assert lstat_digest(kaggle_dir) == before
    # a 1x1 painting no longer stops the pipeline at validate: it is a quarantined file
    artists = pd.read_csv("raw/artists.csv", dtype=str, keep_default_na=False)
    params = ValidateParams(min_side=32, max_quarantined=0.5, paintings_tolerance=1.0)
    report = validate_dataset(artists, written, params)
    assert report.success, report.lines()


def test_a_zip_of_a_folder_with_an_undecodable_name_ingests_it(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The way out when DVC cannot hash a folder holding such a name: give ingest a zip.

    Zip tools store the raw bytes without the UTF-8 flag; readers decode them as cp437.
    """

    class RawName(zipfile.ZipInfo):
        def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (zipfile's name)
            return self.filename.encode("utf-8").replace(b"BAD", b"\xff\xfe"), self.flag_bits

    good = (kaggle_dir / "images/images/Edgar_Degas/Edgar_Degas_1.jpg").read_bytes()
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(kaggle_dir.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(kaggle_dir).as_posix())
        zf.writestr(RawName("images/images/Edgar_Degas/Edgar_Degas_BAD.jpg"), good)
    monkeypatch.chdir(tmp_path)
    result = run_ingest(archive, Path("raw"))
    assert result.summary["quarantined"] == 0 and result.summary["ok"] == 16
    names = set(result.manifest["source_path"])
    assert "images/images/Edgar_Degas/Edgar_Degas_" + b"\xff\xfe".decode("cp437") + ".jpg" in names


def test_a_failure_before_publishing_leaves_the_previous_outputs_whole(
    kaggle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_ingest(kaggle_dir, Path("raw"))
    before = {name: tree_digest(Path(name)) for name in ("raw", "raw-reports")}
    folder = kaggle_dir / "images" / "images" / "Edgar_Degas"
    (folder / "Edgar_Degas_50.jpg").write_bytes((folder / "Edgar_Degas_1.jpg").read_bytes())
    result = ingest(kaggle_dir, Path("raw"), max_side=64, jpeg_quality=90, limits=LIMITS)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(result.manifest, "to_csv", fail)
    with pytest.raises(OSError, match="No space"):
        publish(result, Path("raw"), Path("raw-reports"))
    # the old images, artists.csv, manifest and reports, and no staging folder left behind
    assert {name: tree_digest(Path(name)) for name in ("raw", "raw-reports")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kaggle", "raw", "raw-reports"]


def test_an_empty_artists_csv_is_one_clear_error(kaggle_dir: Path, tmp_path: Path) -> None:
    (kaggle_dir / "artists.csv").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"artists\.csv is empty"):
        ingest(kaggle_dir, tmp_path / "raw", max_side=64, jpeg_quality=90, limits=LIMITS)
    assert not list(tmp_path.glob(".raw-staging-*"))


def test_a_duplicated_artist_name_is_named(kaggle_dir: Path, tmp_path: Path) -> None:
    csv = kaggle_dir / "artists.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    # the Degas row (line 4) now says van Gogh (line 2): Degas' folder becomes an orphan
    lines[3] = lines[3].replace("Edgar Degas", "Vincent van Gogh")
    csv.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(
        DatasetError, match=r"names 'Vincent van Gogh' more than once \(lines 2, 4\)"
    ):
        ingest(kaggle_dir, tmp_path / "raw", max_side=64, jpeg_quality=90, limits=LIMITS)
