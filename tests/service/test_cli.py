"""``artist-id predict``: the packaged model (the tiny one of this tier) on files, folders, zips."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from artist_id import images
from artist_id.cli import main
from tests.service.helpers import (
    CLASSES,
    MAX_BYTES,
    SIZE,
    VENV_BIN,
    Project,
    encode,
    painting,
)


def expected_proba(project: Project, data: bytes) -> np.ndarray:
    """What the packaged model says, computed directly: decode (at twice the input, as the
    command and the service do), fit_square, model.predict."""
    from artist_id.models import load_model

    model = load_model(project.root / "models" / "best" / "model.keras")
    square = images.fit_square(images.decode_bytes(data, min_side=2 * SIZE).image, SIZE)
    return np.asarray(model.predict(np.asarray(square, "float32")[None], verbose=0))[0]


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A folder with good and bad pictures, a non-picture, and a zip of two more."""
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(encode(painting(0), "JPEG", quality=90))
    (folder / "sub" / "b.png").write_bytes(encode(painting(1), "PNG"))
    (folder / "sub" / "fake.jpg").write_bytes(b"just some text\n" * 10)
    jpeg = encode(painting(2, size=(200, 150)), "JPEG", quality=90)
    (folder / "sub" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "notes.txt").write_text("not a picture: not even tried", encoding="utf-8")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/c.webp", encode(painting(3), "WEBP", quality=90))
        z.writestr("x/huge.jpg", b"\xff\xd8\xff" + b"\0" * MAX_BYTES)  # over the package's cap
        z.writestr("x/readme.md", "skipped")
    return {"folder": folder, "zip": archive}


def run(project: Project, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """The command in-process, from the project directory (where models/bento/ is)."""
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(main, ["predict", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_folder_and_a_zip_are_labelled_and_bad_files_reported(
    project: Project, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = inputs["folder"].parent / "predictions.csv"
    code, _, err = run(
        project, monkeypatch, str(inputs["folder"]), str(inputs["zip"]), "--out", str(out)
    )
    assert code == 1  # some files were bad, none fatal
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    folder, archive = inputs["folder"], inputs["zip"]
    names = [r["path"] for r in rows]
    assert names == [
        str(folder / "a.jpg"),
        str(folder / "sub" / "b.png"),
        str(folder / "sub" / "cut.jpg"),
        str(folder / "sub" / "fake.jpg"),
        f"{archive}!x/c.webp",
        f"{archive}!x/huge.jpg",
    ]
    by_name = {r["path"]: r for r in rows}
    assert by_name[str(folder / "sub" / "cut.jpg")]["error"] == "truncated"
    assert by_name[str(folder / "sub" / "fake.jpg")]["error"] == "not_an_image"
    assert by_name[f"{archive}!x/huge.jpg"]["error"] == "too_many_bytes"
    for bad in ("cut.jpg: truncated", "fake.jpg: not_an_image", "huge.jpg: too_many_bytes"):
        assert bad in err
    assert "answered 3 of 6 file(s); 3 bad" in err

    # The answers are the model's own, top-k ordered, by hand from decode + predict.
    good = {
        str(folder / "a.jpg"): (folder / "a.jpg").read_bytes(),
        f"{archive}!x/c.webp": zipfile.ZipFile(archive).read("x/c.webp"),
    }
    for name, data in good.items():
        proba = expected_proba(project, data)
        row = by_name[name]
        assert row["error"] == ""
        order = np.argsort(-proba, kind="stable")
        assert [row[f"artist_{r}"] for r in (1, 2, 3)] == [CLASSES[i] for i in order]
        for r, i in zip((1, 2, 3), order, strict=True):
            assert float(row[f"probability_{r}"]) == pytest.approx(float(proba[i]), abs=2e-6)


def test_every_file_answered_exits_0_and_jsonl_holds_the_api_answer(
    project: Project, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = inputs["folder"] / "a.jpg"
    out = inputs["folder"].parent / "answers.jsonl"
    code, _, _ = run(project, monkeypatch, str(good), "--top-k", "1", "--out", str(out))
    assert code == 0
    (line,) = out.read_text(encoding="utf-8").splitlines()
    answer = json.loads(line)
    assert answer["path"] == str(good)
    proba = expected_proba(project, good.read_bytes())
    top = CLASSES[int(np.argmax(proba))]
    assert answer["top_k"] == [
        {
            "artist": top,
            "probability": pytest.approx(float(proba.max()), abs=2e-6),
            "genre": answer["top_k"][0]["genre"],
            "nationality": answer["top_k"][0]["nationality"],
            "years": answer["top_k"][0]["years"],
        }
    ]
    assert answer["top_k"][0]["genre"]  # from artists.csv, as the service answers
    threshold = json.loads((project.root / "models/bento/artist_id.json").read_text("utf-8"))[
        "unknown"
    ]["threshold"]
    assert answer["unknown"] == (float(proba.max()) < threshold)
    assert answer["artist"] == (None if answer["unknown"] else top)


def test_csv_on_stdout_and_a_progress_bar(
    project: Project, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(project, monkeypatch, str(inputs["zip"]), "--progress")
    assert code == 1
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][:4] == ["path", "artist", "probability", "unknown"]
    assert len(table) == 3  # header + c.webp + huge.jpg
    assert "predict: 100%" in err and "2/2" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/folder"], "does not exist"),
        (["{good}", "--top-k", "4"], "more than the model's 3 classes"),
        (["{good}", "--top-k", "0"], "--top-k"),
        (["{good}", "--out", "answers.txt"], ".csv or .jsonl"),
        (["{empty}"], "no pictures found"),
        (["{good}", "--model", "missing.tar"], "not found"),
        (["{good}", "--model", "{notes}"], "expected a .tar model export or a .keras file"),
    ],
)
def test_usage_errors_exit_2(
    project: Project,
    inputs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    where = {
        "good": str(inputs["folder"] / "a.jpg"),
        "empty": str(tmp_path / "empty"),
        "notes": str(inputs["folder"] / "notes.txt"),
    }
    code, _, err = run(project, monkeypatch, *[a.format(**where) for a in args])
    assert code == 2
    assert message in err


def test_a_keras_file_with_its_labels(
    project: Project, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    keras_file = project.root / "models" / "best" / "model.keras"
    labels = project.root / "data" / "processed" / "classes.json"
    good = inputs["folder"] / "a.jpg"
    code, out, _ = run(
        project, monkeypatch, str(good), "--model", str(keras_file), "--labels", str(labels)
    )
    assert code == 0
    row = next(csv.DictReader(io.StringIO(out)))
    proba = expected_proba(project, good.read_bytes())
    assert row["artist_1"] == CLASSES[int(np.argmax(proba))]
    assert row["unknown"] == "false"  # no package metadata: no threshold
    code, _, err = run(project, monkeypatch, str(good), "--model", str(keras_file))
    assert code == 2 and "--labels" in err


def test_the_installed_command_explains_every_option() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "artist-id"), "predict", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--labels", "--top-k", "--out", "--batch-size", "--workers"):
        line = next(line for line in result.stdout.splitlines() if option in line)
        assert len(line.split(option, 1)[1].strip()) > 10, f"{option} has no explanation"


def test_a_greyscale_picture_is_answered_like_its_rgb_decoding(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 60), 90, dtype=np.uint8), mode="L").save(grey)
    code, out, _ = run(project, monkeypatch, str(grey), "--top-k", "3")
    assert code == 0
    row = next(csv.DictReader(io.StringIO(out)))
    proba = expected_proba(project, grey.read_bytes())
    assert float(row["probability"]) == pytest.approx(float(proba.max()), abs=2e-6)
