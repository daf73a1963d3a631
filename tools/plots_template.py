"""Build .dvc/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inline.

DVC's default page loads the three libraries from a CDN, so offline `dvc plots show` renders
every vega plot blank. `.dvc/config` points `plots.html_template` at the file this script
writes. It takes the exact npm releases pinned below (`npm pack`, integrity checked against
the pin), writes each minified UMD bundle into the page, and writes the licences of the
packages and of their runtime dependencies (what the bundles are built from) next to it.

Run it only to change a version (it needs npm and the npm registry): `make plots-template`.
`check()` is what the tests call: the committed page still matches its recorded hashes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools import vendor

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"
LICENSES = ROOT / ".dvc" / "plots" / "THIRD_PARTY_LICENSES.txt"

# DVC's html.py fills these by plain string replacement; a bundle must not contain them.
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    bundle: str  # path inside the npm tarball
    integrity: str  # npm's dist.integrity of the tarball


# vega 5 / vega-lite 5 / vega-embed 6: the majors DVC's own page and templates use (vega 6 and
# vega-embed 7 ship ES modules only, which a single offline HTML file cannot load).
PACKAGES = (
    Package(
        "vega",
        "5.33.1",
        "build/vega.min.js",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
    ),
    Package(
        "vega-lite",
        "5.23.0",
        "build/vega-lite.min.js",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
    ),
    Package(
        "vega-embed",
        "6.29.0",
        "build/vega-embed.min.js",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
    ),
)

# Every vega plot as SVG (crisp, text selectable, and testable: the marks are DOM nodes) and no
# "Open in Vega Editor" action, which needs the network. DVC's page calls the global
# `vegaEmbed('#id', spec)` once per plot, so wrapping the global sets the defaults for all.
EMBED_DEFAULTS = """\
(function () {
  var embed = window.vegaEmbed;
  window.vegaEmbed = function (el, spec, opt) {
    var actions = {export: true, source: true, compiled: true, editor: false};
    return embed(el, spec, Object.assign({renderer: "svg", actions: actions}, opt || {}));
  };
})();"""

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-spacing: 15px; }"""

BLOCK = re.compile(
    r"<script>/\*! (?P<name>[\w-]+) (?P<version>[\d.]+) \| (?P<license>[\w.-]+) \| "
    r"(?P<file>[\w./-]+) \| sha256 (?P<sha>[0-9a-f]{64}) \*/\n(?P<body>.*?)\n</script>",
    re.S,
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fetch(pkg: Package, work: Path) -> tuple[str, dict[str, object]]:
    """The bundle's text and package.json of ``pkg``, from a tarball matching its pin."""
    tarball = vendor.pack(pkg.name, pkg.version, pkg.integrity, work)
    with tarfile.open(tarball) as tar:
        bundle = tar.extractfile(f"package/{pkg.bundle}")
        manifest = tar.extractfile("package/package.json")
        assert bundle is not None and manifest is not None
        text = bundle.read().decode("utf-8").rstrip("\n")
        # no source-map comment: a browser would try to load the .map file next to the page
        text = re.sub(r"\n//# sourceMappingURL=\S+$", "", text)
        meta = json.loads(manifest.read().decode("utf-8"))
    for bad in (*PLACEHOLDERS, "</script"):
        if bad in text:
            raise SystemExit(f"{pkg.name} {pkg.bundle} contains {bad!r}: cannot inline it")
    return text, meta


def _licenses(work: Path) -> str:
    """Licence texts of the pinned packages and their runtime dependency tree."""
    vendor.run(
        "install",
        "--no-save",
        "--no-package-lock",
        "--ignore-scripts",
        "--omit=dev",
        "--no-audit",
        "--no-fund",
        "--prefix",
        str(work / "deps"),
        *(f"{p.name}@{p.version}" for p in PACKAGES),
        cwd=work,
    )
    entries = []
    for manifest in sorted((work / "deps" / "node_modules").glob("**/package.json")):
        pkg_dir = manifest.parent
        owner = pkg_dir.parent if pkg_dir.parent.name.startswith("@") else pkg_dir
        if owner.parent.name != "node_modules":
            continue  # a package.json inside a package (fixtures, sub-builds)
        meta = json.loads(manifest.read_text("utf-8"))
        if "name" not in meta or "version" not in meta:
            continue
        files = sorted(
            p for p in pkg_dir.iterdir() if re.match(r"(?i)^(licen[cs]e|copying)", p.name)
        )
        text = "\n".join(f.read_text("utf-8", errors="replace").strip() for f in files)
        declared = str(meta.get("license", "no licence declared"))
        if not text:
            text = f"(the npm package ships no licence file; its package.json declares {declared})"
        entries.append((str(meta["name"]), str(meta["version"]), declared, text))
    parts = [
        "Third-party code inlined in .dvc/plots/offline.html, and so in every page that",
        "`dvc plots show` / `dvc plots diff` writes: the minified bundles of vega, vega-lite and",
        "vega-embed, which their authors build from the packages listed below (the runtime",
        "dependency tree of the three as npm installs it: a superset of what the bundles hold).",
        "The vega packages (vega, vega-*) are the University of Washington Interactive Data",
        "Lab's, under the BSD-3-Clause text given for vega-lite; the npm package `vega` itself",
        "ships no licence file.",
        "",
    ]
    for name, version, declared, text in sorted(entries):
        parts += ["=" * 78, f"{name} {version}  ({declared})", "-" * 78, text, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def render(bundles: list[tuple[Package, str, str]]) -> str:
    """The template page for ``(package, licence, bundle text)`` triples."""
    blocks = "\n".join(
        f"<script>/*! {p.name} {p.version} | {lic} | {p.bundle} | sha256 {_sha256(text)} */\n"
        f"{text}\n</script>"
        for p, lic, text in bundles
    )
    listing = "\n".join(f"     {p.name} {p.version} ({lic})" for p, lic, _ in bundles)
    return (
        "<!DOCTYPE html>\n"
        "<!-- artist-id: the page of `dvc plots show` / `dvc plots diff`, offline.\n"
        "     Generated by tools/plots_template.py (`make plots-template`): do not edit by hand.\n"
        "     DVC's default page loads these from a CDN; here they are inline:\n"
        f"{listing}\n"
        "     Licences: .dvc/plots/THIRD_PARTY_LICENSES.txt -->\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "{refresh_tag}\n"
        "<title>artist-id: DVC plots</title>\n"
        f"<style>\n{STYLE}\n</style>\n"
        f"{blocks}\n"
        f"<script>\n{EMBED_DEFAULTS}\n</script>\n"
        "</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )


def build() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundles = []
        for pkg in PACKAGES:
            text, meta = _fetch(pkg, work)
            bundles.append((pkg, str(meta.get("license", "UNKNOWN")), text))
        licenses = _licenses(work)
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    TEMPLATE.write_text(render(bundles), encoding="utf-8")
    LICENSES.write_text(licenses, encoding="utf-8")
    print(f"wrote {TEMPLATE.relative_to(ROOT)} ({TEMPLATE.stat().st_size:,} bytes)")
    print(f"wrote {LICENSES.relative_to(ROOT)}")


def check(path: Path = TEMPLATE) -> list[str]:
    """Problems with the committed page (an empty list when it is sound)."""
    text = path.read_text(encoding="utf-8")
    problems = []
    found = {m["name"]: m for m in BLOCK.finditer(text)}
    for pkg in PACKAGES:
        m = found.get(pkg.name)
        if m is None:
            problems.append(f"{pkg.name} is not inlined")
            continue
        if m["version"] != pkg.version:
            problems.append(f"{pkg.name} is {m['version']}, pinned {pkg.version}")
        if _sha256(m["body"]) != m["sha"]:
            problems.append(f"{pkg.name}: inlined text does not match its recorded sha256")
    if "{plot_divs}" not in text:
        problems.append("no {plot_divs} placeholder: DVC refuses the template")
    if "{scripts}" in text:
        problems.append("{scripts} would let DVC add its CDN <script> tags back")
    if re.search(r"<(script|link)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//", text):
        problems.append("a <script src> or <link href> points to the network")
    return problems


def main(argv: list[str] | None = None) -> int:
    label = str(TEMPLATE.relative_to(ROOT))
    return vendor.main(argv, __doc__.splitlines()[0], build, check, label)


if __name__ == "__main__":
    sys.exit(main())
