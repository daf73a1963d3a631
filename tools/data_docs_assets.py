"""Vendor the scripts, styles and fonts Great Expectations' Data Docs load from CDNs.

GX 1.x writes every Data Docs page with ``<script src>`` / ``<link href>`` tags pointing at
jsDelivr, cdnjs, unpkg and the Bootstrap CDN, and its logo at an S3 bucket: offline the index
page is empty (its tables are drawn by bootstrap-table) and the others are unstyled text. This
script takes the exact npm releases those URLs name (`npm pack`, integrity checked against the
pins below), copies the files the pages load into ``src/artist_id/data_docs_assets/``, and
writes ``manifest.json`` there (each CDN URL -> the local file and its sha256) and the
packages' licences. :func:`artist_id.expectations.offline_data_docs` reads that manifest after
each build and points the pages at the local copies.

Run it only to change a version (it needs npm and the npm registry): `make data-docs-assets`.
`check()` is what the tests call: the committed files still match the manifest, and the
manifest covers every CDN URL GX's templates contain.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from artist_id.expectations import URL, is_loaded_asset
from tools import plots_template, vendor

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "src" / "artist_id" / "data_docs_assets"
MANIFEST = ASSETS / "manifest.json"
LICENSES = ASSETS / "THIRD_PARTY_LICENSES.txt"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # npm's dist.integrity of the tarball
    # (path inside the tarball, the CDN URLs GX writes for it; empty: a file another one loads)
    files: tuple[tuple[str, tuple[str, ...]], ...]
    licence_files: tuple[str, ...] = ("LICENSE",)
    note: str = ""  # what the licence is when the package ships no licence file


BT = "https://unpkg.com/bootstrap-table@"
FILTER = "extensions/filter-control/bootstrap-table-filter-control"
FONTS = tuple(
    (f"webfonts/{face}.woff2", ())
    for face in ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")
)

# The versions GX 1.x's templates name (render/view/templates/*.j2), except where a URL names
# no exact version (vega@5: the releases of the DVC plots page, tools/plots_template.py)
# or the filter-control CSS, which GX takes from bootstrap-table 1.19.0 beside 1.19.1's
# script: both of its URLs get 1.19.1's stylesheet, matching the script.
PACKAGES = (
    Package(
        "jquery",
        "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
        (("dist/jquery.min.js", ("https://code.jquery.com/jquery-3.7.1.min.js",)),),
        ("LICENSE.txt",),
    ),
    Package(
        "popper.js",
        "1.12.9",
        "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
        (
            (
                "dist/umd/popper.min.js",
                ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js",),
            ),
        ),
        (),
        "(ships no licence file; popper.min.js's header: Copyright (C) Federico Zivolo 2017,\n"
        "distributed under the MIT License, https://opensource.org/licenses/MIT)",
    ),
    Package(
        "bootstrap",
        "4.3.1",
        "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
        (
            (
                "dist/css/bootstrap.min.css",
                ("https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css",),
            ),
            (
                "dist/js/bootstrap.min.js",
                ("https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js",),
            ),
        ),
    ),
    Package(
        "bootstrap-table",
        "1.19.1",
        "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
        (
            ("dist/bootstrap-table.min.css", (f"{BT}1.19.1/dist/bootstrap-table.min.css",)),
            ("dist/bootstrap-table.min.js", (f"{BT}1.19.1/dist/bootstrap-table.min.js",)),
            (f"dist/{FILTER}.min.js", (f"{BT}1.19.1/dist/{FILTER}.min.js",)),
            (
                f"dist/{FILTER}.min.css",
                (f"{BT}1.19.0/dist/{FILTER}.css", f"{BT}1.19.0/dist/{FILTER}.min.css"),
            ),
        ),
    ),
    Package(
        "bootstrap-datepicker",
        "1.9.0",
        "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
        (
            (
                "dist/css/bootstrap-datepicker.min.css",
                (
                    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
                    "bootstrap-datepicker.min.css",
                ),
            ),
            (
                "dist/js/bootstrap-datepicker.min.js",
                (
                    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
                    "bootstrap-datepicker.min.js",
                ),
            ),
        ),
    ),
    Package(
        "@fortawesome/fontawesome-free",
        "6.6.0",
        "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
        (
            (
                "css/all.min.css",
                ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css",),
            ),
            *FONTS,
        ),
        ("LICENSE.txt",),
    ),
    Package(
        "@forevolve/bootstrap-dark",
        "1.1.0",
        "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
        (
            (
                "dist/css/bootstrap-prefers-dark.css",
                (
                    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
                    "bootstrap-prefers-dark.css",
                ),
            ),
        ),
    ),
    # vega@5, vega-lite@5, vega-embed@6: the releases the DVC plots page inlines
    *(
        Package(
            p.name,
            p.version,
            p.integrity,
            ((p.bundle, (f"https://cdn.jsdelivr.net/npm/{p.name}@{p.version.split('.')[0]}",)),),
            () if p.name == "vega" else ("LICENSE",),
            "(ships no licence file: BSD-3-Clause, the text vega-lite ships, below)",
        )
        for p in plots_template.PACKAGES
    ),
)

# Not a package: GX's logo on its S3 bucket (the pages add a ?d=<timestamp> query). GX ships
# the same picture in its static folder, which every site already has: these map to a path
# inside the site rather than to a vendored file.
LOGOS = {
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png": (
        "static/images/logo-long.png"
    ),
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png": (
        "static/images/logo-long.png"
    ),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _local_name(pkg: Package, inner: str) -> str:
    """``<package>-<version>/<path in the tarball>``, without ``dist/`` or ``build/``."""
    short = re.sub(r"^(dist|build)/", "", inner)
    return f"{pkg.name.replace('@', '').replace('/', '-')}-{pkg.version}/{short}"


def build() -> None:
    manifest: dict[str, object] = {"urls": {}, "files": {}, "packages": {}, "site": LOGOS}
    urls: dict[str, str] = manifest["urls"]  # type: ignore[assignment]
    files: dict[str, str] = manifest["files"]  # type: ignore[assignment]
    licences = [
        "Third-party files in src/artist_id/data_docs_assets/, copied into every Data Docs site",
        "the validate stage writes (reports/validate/data_docs/static/vendor/) so that its pages",
        "work offline. Written by tools/data_docs_assets.py from the npm releases named here.",
        "",
    ]
    if ASSETS.exists():
        shutil.rmtree(ASSETS)
    ASSETS.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for pkg in PACKAGES:
            tarball = vendor.pack(pkg.name, pkg.version, pkg.integrity, work)
            with tarfile.open(tarball) as tar:
                meta = json.loads(_read(tar, "package.json"))
                for inner, cdn_urls in pkg.files:
                    data = _read(tar, inner)
                    # no source-map comment: a browser would look for the .map file beside it
                    data = re.sub(rb"\n?/[/*]# sourceMappingURL=\S+?( \*/)?\s*$", b"\n", data)
                    local = _local_name(pkg, inner)
                    (ASSETS / local).parent.mkdir(parents=True, exist_ok=True)
                    (ASSETS / local).write_bytes(data)
                    files[local] = _sha256(data)
                    for url in cdn_urls:
                        urls[url] = local
                texts = [_read(tar, f).decode("utf-8").strip() for f in pkg.licence_files]
            declared = str(meta.get("license", "UNKNOWN"))
            manifest["packages"][f"{pkg.name}@{pkg.version}"] = declared  # type: ignore[index]
            text = "\n".join(texts) or pkg.note
            licences += ["=" * 78, f"{pkg.name} {pkg.version}  ({declared})", "-" * 78, text, ""]
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    LICENSES.write_text("\n".join(licences).rstrip("\n") + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    print(f"wrote {len(files)} files ({size:,} bytes) to {ASSETS.relative_to(ROOT)}")


def _read(tar: tarfile.TarFile, inner: str) -> bytes:
    member = tar.extractfile(f"package/{inner}")
    if member is None:
        raise SystemExit(f"{inner} is not a file in the tarball")
    return member.read()


def gx_template_urls() -> set[str]:
    """Every https URL in the installed GX's Data Docs templates and default stylesheet."""
    import great_expectations

    view = Path(great_expectations.__file__).parent / "render" / "view"
    found: set[str] = set()
    for path in [*view.glob("templates/*.j2"), *view.glob("static/styles/*.css")]:
        found.update(URL.findall(path.read_text("utf-8")))
    return found


def loaded_urls(urls: set[str]) -> set[str]:
    """The URLs a page *loads* (scripts, styles, images), not links a reader may follow."""
    bases = {u.split("?", 1)[0] for u in urls}
    return {u for u in bases if is_loaded_asset(u)}


def check(assets: Path = ASSETS) -> list[str]:
    """Problems with the committed assets (an empty list when they are sound)."""
    manifest = json.loads((assets / "manifest.json").read_text("utf-8"))
    problems = []
    for local, sha in manifest["files"].items():
        path = assets / local
        if not path.is_file():
            problems.append(f"{local} is missing")
        elif _sha256(path.read_bytes()) != sha:
            problems.append(f"{local} does not match its recorded sha256")
    for url, local in manifest["urls"].items():
        if local not in manifest["files"]:
            problems.append(f"{url} maps to {local}, which is not a vendored file")
    known = set(manifest["urls"]) | set(manifest["site"])
    for url in sorted(loaded_urls(gx_template_urls()) - known):
        problems.append(f"GX's templates load {url}, which is not vendored")
    return problems


def main(argv: list[str] | None = None) -> int:
    label = str(ASSETS.relative_to(ROOT))
    return vendor.main(argv, __doc__.splitlines()[0], build, check, label)


if __name__ == "__main__":
    sys.exit(main())
