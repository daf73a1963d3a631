"""The web page in a real browser: headless Chromium (Debian's package, driven by Selenium with
the system chromedriver) against ``bentoml serve`` of the built Bento.

Nothing is downloaded: the driver path is given (Selenium Manager is not consulted) and
SE_OFFLINE keeps it offline anyway. Without the browser the test skips with the install line,
except under CI (``CI`` set), where it fails: ``.ci/run`` installs it.
Screenshots go to ``build/test-output/web/`` (git-ignored), where a person can look at them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import OUTPUT
from tests.service.helpers import REAL_IMAGES, Server, encode, painting

pytestmark = pytest.mark.slow

INSTALL = "apt-get install -y chromium chromium-driver"
CHROMEDRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
# Without these, Chromium on a closed network stalls on its background services.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1100,2000",  # the whole answer, heat map included
)
WAIT = 90  # seconds: the first /explain traces the gradient pass on a loaded machine


def browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next(
        (p for p in CHROMEDRIVER_PATHS if Path(p).is_file()), None
    )
    if chromium is None or driver is None:
        message = f"headless Chromium is not installed; on Debian/Ubuntu: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    return chromium, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download a driver or browser
    chromium, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=driver_path, log_output=os.devnull)
    )
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def a_painting(tmp_path: Path) -> Path:
    """A real painting when ../shared/real-sample is there, else a generated picture."""
    real = sorted(REAL_IMAGES.glob("*/*.jpg"))
    if real:
        smallest = min(real, key=lambda p: p.stat().st_size)
        path = tmp_path / smallest.name
        path.write_bytes(smallest.read_bytes())
        return path
    path = tmp_path / "painting.jpg"
    path.write_bytes(encode(painting(5, size=(160, 120)), "JPEG", quality=90))
    return path


def test_the_page_answers_like_the_api_and_shows_its_errors(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    browser.get(server.url + "/")
    wait.until(lambda d: d.find_element(By.ID, "version").text.startswith("Model "))
    assert browser.find_elements(By.CSS_SELECTOR, "#top-k option")

    # Keyboard: the first Tab stop is the (labelled) file input.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "file"
    label = browser.find_element(By.CSS_SELECTOR, "label[for=file]").text
    assert "Choose a picture" in label

    # A painting: the artist shown is the API's answer, the heat map arrives.
    picture = a_painting(tmp_path)
    browser.find_element(By.ID, "file").send_keys(str(picture))
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    api = httpx.post(
        f"{server.url}/predict",
        files={"image": (picture.name, picture.read_bytes(), "image/jpeg")},
        timeout=60,
    ).json()
    shown = browser.find_element(By.ID, "artist").text
    assert shown == (api["artist"] if not api["unknown"] else "Unknown")
    names = [
        li.find_element(By.CSS_SELECTOR, ".name").text
        for li in browser.find_elements(By.CSS_SELECTOR, "#top-list li")
    ]
    assert names == [t["artist"] for t in api["top_k"]]
    verdict = browser.find_element(By.ID, "verdict-text").text
    assert ("not sure enough" in verdict) == api["unknown"]
    version = browser.find_element(By.ID, "version").text
    assert api["model"]["version"] in version
    preview_alt = browser.find_element(By.ID, "preview").get_attribute("alt")
    assert picture.name in preview_alt

    wait.until(lambda d: d.find_element(By.ID, "explain-figure").is_displayed())
    heatmap = browser.find_element(By.ID, "heatmap")
    assert heatmap.get_attribute("src").startswith("data:image/png;base64,")
    assert browser.execute_script("return arguments[0].naturalWidth", heatmap) == 384
    assert "brighter a region" in heatmap.get_attribute("alt")
    shots = OUTPUT / "web"
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "answer.png"))

    # Not an image: the page shows the API's own message.
    text_file = tmp_path / "notes.jpg"
    text_file.write_bytes(b"these are my notes, not a picture\n" * 4)
    browser.find_element(By.ID, "file").send_keys(str(text_file))
    wait.until(ec.visibility_of_element_located((By.ID, "error")))
    refused = httpx.post(
        f"{server.url}/predict",
        files={"image": (text_file.name, text_file.read_bytes(), "image/jpeg")},
        timeout=60,
    )
    assert refused.status_code == 415
    error_text = browser.find_element(By.ID, "error").text
    assert refused.json()["detail"] in error_text
    assert refused.json()["error"] in error_text
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.save_screenshot(str(shots / "error.png"))
    print(f"\nscreenshots: {shots / 'answer.png'} {shots / 'error.png'}")
