"""Name matching, layout discovery and ingest (the ``ingest`` stage's library)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from artist_id import images
from artist_id.ingest import flat_prefix, ingest, match_folders
from artist_id.manifest import MANIFEST_COLUMNS, DatasetError, fix_mojibake, name_key, slug
from tests.conftest import REAL_SAMPLE, mojibake, write_kaggle

LIMITS = images.DecodeLimits(max_bytes=5_000_000, max_pixels=4_000_000)


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
    result = ingest(kaggle_dir, Path("raw"), max_side=64, jpeg_quality=90, limits=LIMITS)
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
    a = ingest(kaggle_dir, Path("a"), max_side=64, jpeg_quality=90, limits=LIMITS)
    b = ingest(archive, Path("b"), max_side=64, jpeg_quality=90, limits=LIMITS)
    cols = ["image_id", "artist", "sha256", "phash", "width", "height", "status"]
    pd.testing.assert_frame_equal(a.manifest[cols], b.manifest[cols])
    assert tree_digest(Path("a/images")) == tree_digest(Path("b/images"))


def test_ingest_flat_resized_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_kaggle(tmp_path / "flat", {"Edgar Degas": 3, "Pablo Picasso": 2}, layout="flat")
    monkeypatch.chdir(tmp_path)
    result = ingest(root, Path("raw"), max_side=64, jpeg_quality=90, limits=LIMITS)
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
    result = ingest(kaggle_dir, Path("raw"), max_side=64, jpeg_quality=90, limits=LIMITS)
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
    result = ingest(REAL_SAMPLE, Path("raw"), max_side=128, jpeg_quality=90, limits=LIMITS)
    assert result.summary["layout"] == "nested"
    assert result.summary["artists_in_csv"] == 50
    assert set(result.manifest["artist"]) == {"Vincent van Gogh", "Edgar Degas", "Pablo Picasso"}
    assert (result.manifest["status"] == "ok").all()
    assert "L" in set(result.manifest["source_mode"]), "two Picasso files are greyscale"
