"""bentofile.yaml and the Bento `bentoml build` makes from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.service.helpers import HOME, REPO, Project

SERVICE_MODULES = {
    "__init__.py",
    "service.py",
    "api.py",
    "predictor.py",
    "serving_metadata.py",
    "genre_serving.py",
    "images.py",
    "models.py",
    "config.py",
    "explain.py",
    "figures.py",
}
WEB_FILES = {"index.html", "app.js", "style.css"}  # the page at GET /


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def bentofile() -> dict[str, Any]:
    return yaml.safe_load((REPO / "bentofile.yaml").read_text(encoding="utf-8"))


def test_bentofile_pins_the_tested_versions() -> None:
    pinned = constraints()
    packages = bentofile()["python"]["packages"]
    assert packages, "bentofile.yaml pins no packages"
    for spec in packages:
        name, _, version = spec.partition("==")
        assert version, f"{spec} is not pinned with =="
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert pinned.get(key) == version, f"{spec}: constraints.txt has {pinned.get(key)}"
    names = {p.partition("==")[0] for p in packages}
    assert {"bentoml", "keras", "tensorflow", "pillow", "numpy"} <= names
    assert tuple(int(x) for x in pinned["bentoml"].split(".")) >= (1, 4, 39)


def test_bentofile_service_and_docker() -> None:
    config = bentofile()
    assert config["service"] == "artist_id.service:ArtistID"
    assert str(config["docker"]["python_version"]) == "3.11"
    assert {Path(p).name for p in config["include"]} == SERVICE_MODULES | WEB_FILES
    assert {"name": "BENTOML_DO_NOT_TRACK", "value": "true"} in config["envs"]


@pytest.mark.slow
def test_bentoml_build_bundles_model_code_and_pins(bento_tag: str, project: Project) -> None:
    name, version = bento_tag.split(":")
    bento = Path(HOME) / "bentos" / name / version
    info = yaml.safe_load((bento / "bento.yaml").read_text(encoding="utf-8"))
    assert info["bentoml_version"] == constraints()["bentoml"]
    models = {m["tag"] for svc in info["services"] for m in svc["models"]}
    assert models == {project.tag, project.genre_tag}  # the pair, one version
    assert {s["name"] for s in info["services"]} == {
        "artist_id",
        "artist_id_model",
        "artist_id_explainer",
    }
    code = {
        p.relative_to(bento / "src").as_posix()
        for p in (bento / "src").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert code == {f"artist_id/{m}" for m in SERVICE_MODULES} | {
        f"artist_id/web/{f}" for f in WEB_FILES
    } | {"bentofile.yaml"}
    requirements = (bento / "env" / "python" / "requirements.txt").read_text(encoding="utf-8")
    for spec in bentofile()["python"]["packages"]:
        assert spec in requirements.splitlines(), f"{spec} missing from the Bento's requirements"
    assert str(info["image"]["python_version"]) == "3.11"


@pytest.mark.slow
def test_the_bundled_code_imports_on_its_own(bento_tag: str) -> None:
    """The Bento's src/ holds every module the service imports (not only the working tree)."""
    name, version = bento_tag.split(":")
    src = Path(HOME) / "bentos" / name / version / "src"
    check = (
        "import sys\n"
        f"sys.path = [{str(src)!r}] + [p for p in sys.path if not p.endswith('/src')]\n"
        "import artist_id.service, artist_id.models\n"
        "for m in ('artist_id.service', 'artist_id.models', 'artist_id.images',"
        " 'artist_id.api', 'artist_id.predictor', 'artist_id.serving_metadata',"
        " 'artist_id.explain'):\n"
        f"    assert sys.modules[m].__file__.startswith({str(src)!r}), sys.modules[m].__file__\n"
        "import artist_id.api\n"
        "assert b'ui/app.js' in artist_id.api.web_file('index.html')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert result.returncode == 0, result.stderr[-2000:]
