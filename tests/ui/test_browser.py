"""A person in a real browser (headless Chromium, driven by Selenium) against a real server:
logs in through the form, searches, opens a project, reads its README, logs out; the keyboard
alone reaches and submits the search; the pages fit a laptop and a phone, with screenshots.

Chromium and its driver come from the distribution (``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them). Without them these tests fail, never skip: a
UI nobody looked at is not tested. Screenshots go to ``test-artifacts/screenshots/`` at the
top of the checkout (ignored by git, kept by CI with the checkout).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.server import RunningServer
from tests.ui.conftest import PROJECTS

pytestmark = pytest.mark.e2e

INSTALL_HINT = "apt-get install chromium chromium-driver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# This machine's network is closed: Chromium must not try to reach Google's services.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LAPTOP = (1366, 768)
PHONE = (390, 844)
WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(
            f"The browser tests need Chromium and its driver: {INSTALL_HINT}", pytrace=False
        )
    options = Options()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    except WebDriverException as error:
        pytest.fail(
            f"Chromium did not start ({error.msg}); is it installed? {INSTALL_HINT}", pytrace=False
        )
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def person(browser: WebDriver, ui_server: RunningServer) -> Iterator[WebDriver]:
    """The browser, at laptop size, with no session when the test starts and ends."""
    set_viewport(browser, *LAPTOP)
    browser.delete_all_cookies()
    yield browser
    browser.get(ui_server.url + "/login/")  # cookies can only be cleared on the server's origin
    browser.delete_all_cookies()


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's own size (not the window's), as a laptop or a phone shows it."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def screenshot(driver: WebDriver, name: str) -> None:
    """The whole page, at the viewport's width, to ``SCREENSHOTS/<name>.png``."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip}
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def wait_for_url(driver: WebDriver, url: str) -> None:
    WebDriverWait(driver, WAIT_SECONDS).until(expected_conditions.url_to_be(url))


def shown_projects(driver: WebDriver) -> list[str]:
    return [link.text for link in driver.find_elements(By.CSS_SELECTOR, "ul.projects a.name")]


def log_in(driver: WebDriver, server: RunningServer) -> None:
    """Fill in the login form the browser shows and send it, as a person does."""
    driver.find_element(By.ID, "repository").send_keys("local")
    driver.find_element(By.ID, "secret").send_keys(server.secret("local", "read"))
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()


def test_a_person_logs_in_searches_opens_a_project_reads_its_readme_and_logs_out(
    person: WebDriver, ui_server: RunningServer
) -> None:
    home = ui_server.url + "/"
    person.get(home)
    assert shown_projects(person) == []
    person.find_element(By.LINK_TEXT, "Log in").click()
    wait_for_url(person, ui_server.url + "/login/")
    log_in(person, ui_server)
    wait_for_url(person, home)
    assert shown_projects(person) == PROJECTS
    assert "hidden-thing" not in person.page_source
    header = person.find_element(By.CSS_SELECTOR, "header.site")
    assert header.value_of_css_property("display") == "flex", "the stylesheet applies"

    person.find_element(By.ID, "q").send_keys("gadget")
    person.find_element(By.CSS_SELECTOR, "form.search button").click()
    wait_for_url(person, home + "?q=gadget&sort=name")
    assert shown_projects(person) == ["gadget-lib"]

    search = person.find_element(By.ID, "q")
    search.clear()
    search.send_keys("widget")
    search.submit()
    wait_for_url(person, home + "?q=widget&sort=name")
    person.find_element(By.LINK_TEXT, "widget-toolkit").click()
    wait_for_url(person, ui_server.url + "/project/widget-toolkit/")
    readme = person.find_element(By.CSS_SELECTOR, ".readme")
    assert readme.find_element(By.TAG_NAME, "h1").text == "Widget toolkit"
    assert readme.find_element(By.TAG_NAME, "strong").text == "everyone"
    assert "Yanked" not in person.page_source

    person.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait_for_url(person, ui_server.url + "/login/")
    assert person.get_cookie("private_pypi_session") is None
    person.get(ui_server.url + "/project/widget-toolkit/")
    wait_for_url(person, ui_server.url + "/login/?next=%2Fproject%2Fwidget-toolkit%2F")
    assert "Widget toolkit" not in person.page_source
    log_in(person, ui_server)
    wait_for_url(person, ui_server.url + "/project/widget-toolkit/")

    refused = [
        entry["message"]
        for entry in person.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert refused == [], "the pages need nothing the policy forbids"


def test_the_keyboard_alone_reaches_the_search_box_and_submits_it(
    person: WebDriver, ui_server: RunningServer
) -> None:
    person.get(ui_server.url + "/login/")
    log_in(person, ui_server)
    wait_for_url(person, ui_server.url + "/")
    keys = ActionChains(person)
    for _ in range(6):
        keys.send_keys(Keys.TAB).perform()
        focused = person.switch_to.active_element
        if focused.get_attribute("id") == "q":
            break
    else:
        pytest.fail("six presses of Tab did not reach the search box")
    assert focused.value_of_css_property("outline-style") == "solid", "focus is visible"
    keys.send_keys("tool-" + Keys.ENTER).perform()
    wait_for_url(person, ui_server.url + "/?q=tool-&sort=name")
    assert shown_projects(person) == [name for name in PROJECTS if "tool-" in name]


@pytest.mark.parametrize(("device", "size"), [("laptop", LAPTOP), ("phone", PHONE)])
def test_the_pages_fit_a_laptop_and_a_phone(
    person: WebDriver, ui_server: RunningServer, device: str, size: tuple[int, int]
) -> None:
    """Nothing is wider than the screen; the screenshots (whole pages) are for a person to
    look at."""
    person.get(ui_server.url + "/login/")
    set_viewport(person, *size)
    screenshot(person, f"login-{device}")
    log_in(person, ui_server)
    wait_for_url(person, ui_server.url + "/")
    for page, path in [("home", "/"), ("project", "/project/widget-toolkit/")]:
        person.get(ui_server.url + path)
        # Against the device's width: a phone's browser would zoom out to fit a wider page.
        width = person.execute_script("return document.documentElement.scrollWidth")
        assert width <= size[0], f"{page} is {width}px wide on a {device} of {size[0]}px"
        screenshot(person, f"{page}-{device}")
