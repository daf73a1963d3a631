"""artists.csv parsing shared by eda, genre and periods: years, periods, multi-valued cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from artist_id import artists


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1884 - 1920", (1884, 1920)),  # the hyphen form (36 rows of the real csv)
        ("1853 – 1890", (1853, 1890)),  # the en-dash form (14 rows)
        ("1853—1890", (1853, 1890)),
        ("1853 − 1890", (1853, 1890)),  # minus sign
        ("c. 1525 to 1569", (1525, 1569)),
        ("1360-1430", (1360, 1430)),
        ("born 1445, died 1510?", (1445, 1510)),
        ("1920 - 1884", None),
        ("unknown", None),
        ("", None),
        ("1884", None),
    ],
)
def test_parse_years(text: str, expected: tuple[int, int] | None) -> None:
    assert artists.parse_years(text) == expected


def test_split_values() -> None:
    assert artists.split_values("French, Jewish,Belarusian") == ["French", "Jewish", "Belarusian"]
    assert artists.split_values(" Expressionism ,,Expressionism") == ["Expressionism"]
    assert artists.split_values("") == []


@pytest.mark.parametrize(
    ("years", "width", "anchor", "expected"),
    [
        ((1853, 1890), 50, "midpoint", "1850-1899"),  # midpoint 1871
        ((1266, 1337), 50, "midpoint", "1300-1349"),  # midpoint 1301
        ((1849, 1850), 50, "midpoint", "1800-1849"),  # midpoint 1849.5 rounds down
        ((1881, 1973), 50, "midpoint", "1900-1949"),  # Picasso: midpoint 1927
        ((1881, 1973), 25, "midpoint", "1925-1949"),
        ((1881, 1973), 100, "birth", "1800-1899"),
        ((1881, 1973), 50, "death", "1950-1999"),
        ((950, 1010), 50, "midpoint", "0950-0999"),  # 3-digit years keep 4-digit labels
    ],
)
def test_period_buckets_the_anchor_year(
    years: tuple[int, int], width: int, anchor: artists.Anchor, expected: str
) -> None:
    assert artists.period(years, width, anchor) == expected


def test_half_century_is_the_midpoint_period() -> None:
    assert artists.half_century((1853, 1890)) == "1850-1899"
    with pytest.raises(ValueError, match="width"):
        artists.period((1853, 1890), 0)


def test_read_artists_csv_handles_both_dashes_and_odd_years(tmp_path: Path) -> None:
    csv = tmp_path / "artists.csv"
    csv.write_text(
        "id,name,years,genre,nationality\n"
        '0,Ann,1884 - 1920,"Symbolism,Post-Impressionism",French\n'
        "1,Bo,1853 – 1890,Impressionism,Dutch\n"
        "2,Cy,unknown,Baroque,\n"
        "3,Ann,1700 - 1750,Rococo,Italian\n",  # a repeated name: the first row wins
        encoding="utf-8",
    )
    meta = artists.read_artists_csv(csv)
    assert sorted(meta) == ["Ann", "Bo", "Cy"]
    assert meta["Ann"].genres == ("Symbolism", "Post-Impressionism")
    assert meta["Ann"].period() == "1900-1949"  # midpoint 1902
    assert meta["Bo"].period() == "1850-1899"  # en dash, midpoint 1871
    assert meta["Cy"].years is None and meta["Cy"].period() == artists.UNKNOWN_PERIOD
    assert meta["Cy"].nationalities == ()
    assert artists.genres_of(["Bo", "Nobody"], meta) == [("Impressionism",), ()]
