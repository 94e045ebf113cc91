"""The page at ``GET /`` in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven
by Selenium): choose a clip and its top-1 name appears; run a timeline and the annotated video
plays with its segments listed. Under ``CI=true`` a missing browser fails the test; elsewhere it
is skipped with the command that installs one."""
import os
import shutil

import pytest

from tests.inference.timeline_helpers import CLASSES, three_action_video
from tests.serving.server_helpers import Server, clip_video

pytestmark = pytest.mark.slow
INSTALL = "apt-get install -y chromium chromium-driver (Debian/Ubuntu; `make test` does it as root)"


def find_browser():
    """``(chromium binary, chromedriver)`` or a skip (a failure under CI=true)."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = f"no Chromium/chromedriver found for the page test; install them with: {INSTALL}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    binary, driver_path = find_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1000,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(driver_path))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.stop()


def test_page_shows_top1_then_plays_the_annotated_timeline(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90, poll_frequency=0.2)
    browser.get(f"http://127.0.0.1:{server.port}/")
    chooser = browser.find_element(By.ID, "file")
    chooser.send_keys(str(clip_video(2)))
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith("clip_grow.mp4: "))
    assert d_text(browser, "status").startswith(f"clip_grow.mp4: {CLASSES[2]} (")
    first_bar = browser.find_elements(By.CSS_SELECTOR, "#top5 .bar .name")[0]
    assert first_bar.text == CLASSES[2]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#top5 .bar")) == 3

    chooser.send_keys(str(three_action_video()))
    wait.until(lambda d: "three_actions.mp4:" in d.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "start-timeline").click()
    wait.until(lambda d: d.execute_script(
        "const v = document.getElementById('player');"
        "return !v.hidden && v.readyState >= 2 && v.currentTime > 0;"))
    segments = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#segments li")]
    assert [next(n for n in CLASSES if n in s) for s in segments] == list(CLASSES)
    assert "done: 3 segments" in d_text(browser, "job-status")
    error = browser.execute_script("return document.getElementById('player').error;")
    assert error is None


def d_text(browser, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id).text
