"""The console in a real browser (Debian's chromium through chromedriver, headless): log
in, watch a job fail into the dead letters and a requeue succeed without a reload, pause
a queue and see `naqd queues` agree, cancel a running job, search by an argument value,
a viewer who cannot act, and a job's `<script>` shown as text. One browser and one daemon
for the module; the screenshots in docs/dashboard.md are taken here."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.helpers import PASSWORD, Console, start_console, stop_console
from tests.natsserver import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The docs' screenshots are rewritten only when asked (NAQD_UPDATE_SCREENSHOTS=1), so a
# test run leaves the work tree as it was; otherwise they go to a temporary directory.
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = (
    DOCS_SHOTS
    if os.environ.get("NAQD_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / f"naqd-screenshots-{os.getpid()}"
)

selenium = pytest.importorskip("selenium", reason="selenium is not installed (the test extra)")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium "
        "chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(240)

SCHEDULE = """\
schedules:
  nightly-report: {task: "tests.tasks:add", cron: "0 3 * * *", args: [1, 2]}
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    c = start_console(tmp_path_factory.mktemp("browser"), SCHEDULE)
    yield c
    stop_console(c)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="naqd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1360,900", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: webdriver.Chrome, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(
        driver, seconds, poll_frequency=0.1,
        ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
    )  # fmt: skip


def log_in(driver: webdriver.Chrome, console: Console, user: str) -> None:
    driver.delete_all_cookies()
    driver.get(console.url + "/login")
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "who-name"), user))


def as_user(driver: webdriver.Chrome, console: Console, user: str) -> None:
    """Logged in as `user`, whatever test ran before in this browser (xdist may hand a
    module's tests to two workers, each with its own browser)."""
    driver.get(console.url + "/workers")
    names = driver.find_elements(By.ID, "who-name")
    if not names or names[0].text != user:
        log_in(driver, console, user)


def mark(driver: webdriver.Chrome) -> None:
    """A flag in the page's JS state: still there later means the page did not reload."""
    driver.execute_script("window.__same_page = true;")


def same_page(driver: webdriver.Chrome) -> bool:
    return bool(driver.execute_script("return window.__same_page === true;"))


def live(driver: webdriver.Chrome) -> None:
    """The page's event stream is open."""
    try:
        wait(driver).until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"))
    except Exception:
        print(driver.get_log("browser"), driver.page_source[:3000])
        raise


def shot(driver: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def accept_confirm(driver: webdriver.Chrome) -> str:
    alert = wait(driver, 20).until(EC.alert_is_present())  # a bulk one waits for its dry run
    text = alert.text
    alert.accept()
    return text


def click(driver: webdriver.Chrome, xpath: str, by: str = By.XPATH) -> None:
    """Click, again if a live region re-rendered the element meanwhile."""

    def attempt(d: webdriver.Chrome) -> bool:
        d.find_element(by, xpath).click()
        return True

    wait(driver).until(attempt)


def state_of(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.CSS_SELECTOR, "[data-live] .state").text


def test_log_in_and_see_the_cluster(browser: webdriver.Chrome, console: Console) -> None:
    browser.get(console.url + "/")
    assert "/login" in browser.current_url
    log_in(browser, console, "alice")
    wait(browser).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-queue="default"]'))
    )
    console.enqueue("tests.tasks:add", "2", "3", job_id="shot-add")
    live(browser)
    shot(browser, "overview")


def test_a_failing_job_shows_up_in_dead_letters_live_and_a_requeue_succeeds_live(
    browser: webdriver.Chrome, console: Console, tmp_path: Path
) -> None:
    as_user(browser, console, "alice")
    browser.get(console.url + "/dead-letters")
    live(browser)
    mark(browser)
    # Relative to the daemon's working directory: the screenshots show no machine paths.
    flag = console.tmp / "fixed-flag"
    job = console.enqueue("tests.tasks:fail_until", '"fixed-flag"', job_id="browser-dies")
    row = (By.CSS_SELECTOR, f'#dead-letters tr[data-job="{job}"]')
    wait(browser).until(EC.presence_of_element_located(row))
    assert same_page(browser)
    assert "RuntimeError" in browser.find_element(*row).text
    shot(browser, "dead-letters")
    flag.touch()  # the bug is fixed: the requeued job will succeed
    click(browser, job, By.LINK_TEXT)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "job-id"), job))
    live(browser)
    mark(browser)
    wait(browser).until(lambda d: state_of(d) == "dead")
    click(browser, "//button[text()='Requeue']")
    wait(browser).until(lambda d: state_of(d) == "succeeded")
    assert same_page(browser)
    assert browser.find_element(By.ID, "job-result").text == '"saved"'
    shot(browser, "job")


def test_pause_a_queue_and_naqd_queues_agrees(browser: webdriver.Chrome, console: Console) -> None:
    as_user(browser, console, "alice")
    browser.get(console.url + "/queues/other")
    live(browser)
    click(browser, "//button[text()='Pause']")
    assert "Pause queue other?" in accept_confirm(browser)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "queue-state"), "paused"))

    def cli_says(state: str) -> bool:
        out = console.naqd("queues").stdout
        return any(line.split()[0] == "other" and line.split()[-1] == state
                   for line in out.splitlines()[1:])  # fmt: skip

    wait_until(lambda: cli_says("paused"), 15, what="naqd queues: paused")
    click(browser, "//button[text()='Resume']")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "queue-state"), "active"))
    wait_until(lambda: cli_says("active"), 15, what="naqd queues: active")


def test_cancel_a_running_job(browser: webdriver.Chrome, console: Console, tmp_path: Path) -> None:
    as_user(browser, console, "alice")
    job = console.enqueue(
        "tests.tasks:thread_until_cancelled", f'"{tmp_path}"', job_id="browser-long"
    )
    wait_until(lambda: (tmp_path / "started").exists(), 20, what="job started")

    # This test is about the cancel (live updates have tests of their own): the page is
    # loaded again until it shows the job running (a page without a state, such as an
    # error page, is loaded again too: the wait would swallow its NoSuchElement).
    def shows_running(d: webdriver.Chrome) -> bool:
        states = d.find_elements(By.CSS_SELECTOR, "[data-live] .state")
        if states and states[0].text == "running":
            return True
        d.get(f"{console.url}/jobs/{job}")
        return False

    browser.get(f"{console.url}/jobs/{job}")
    wait(browser, 40).until(shows_running)
    live(browser)
    mark(browser)
    click(browser, "//button[text()='Cancel']")
    assert "cannot be undone" in accept_confirm(browser)
    wait(browser).until(lambda d: state_of(d) == "cancelled")
    assert same_page(browser)


def test_search_by_an_argument_value(
    browser: webdriver.Chrome, console: Console, tmp_path: Path
) -> None:
    as_user(browser, console, "alice")
    for user in (41, 42, 43):
        console.naqd(
            "enqueue", "tests.tasks:fail_until", '"never-there"', "--kwargs",
            f'{{"user_id": {user}}}', "--job-id", f"user-{user}",
        )  # fmt: skip
    browser.get(console.url + "/jobs")
    # Until all three are dead letters, a search could miss one in flight.
    wait_until(
        lambda: all(
            console.naqd("result", f"user-{u}").stdout.count('"failed"') for u in (41, 42, 43)
        ),
        20,
        what="three dead letters",
    )
    box = browser.find_element(By.ID, "args")
    box.send_keys("user_id=42")
    browser.find_element(By.ID, "search").click()
    hit = (By.CSS_SELECTOR, '#search-results tr[data-job="user-42"]')
    wait(browser).until(EC.presence_of_element_located(hit))
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "search-status"), "done"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#search-results tbody tr")
    assert [r.get_attribute("data-job") for r in rows] == ["user-42"]
    shot(browser, "search")


def test_script_in_arguments_is_text(browser: webdriver.Chrome, console: Console) -> None:
    as_user(browser, console, "alice")
    evil = "<script>window.__xss = 1</script><img src=x onerror=window.__xss=2>"
    job = console.naqd("enqueue", "tests.tasks:fail", evil, "--job-id", "xss-job").stdout.strip()
    browser.get(f"{console.url}/jobs/{job}")
    wait(browser).until(lambda d: state_of(d) == "dead" or (d.refresh() and False))
    args = browser.find_element(By.ID, "job-args").text
    assert "<script>window.__xss = 1</script>" in args
    assert "<script>" in browser.find_element(By.ID, "job-error").text
    assert browser.execute_script("return window.__xss === undefined;")
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")
    browser.get(console.url + "/dead-letters")
    assert browser.execute_script("return window.__xss === undefined;")
    assert "<script>" in browser.find_element(By.CSS_SELECTOR, 'tr[data-job="xss-job"]').text


def test_bulk_delete_shows_its_dry_run_count_first(
    browser: webdriver.Chrome, console: Console
) -> None:
    as_user(browser, console, "alice")
    ids = [console.enqueue("tests.tasks:fail", '"bulk"', queue="other") for _ in range(2)]
    browser.get(console.url + "/dead-letters?queue=other")
    for job in ids:
        wait(browser).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-job="{job}"]'))
        )
    browser.find_element(By.ID, "bulk-delete").click()
    assert accept_confirm(browser) == "Delete 2 dead letter(s) matching queue=other?"
    wait(browser).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "#dead-letters tr[data-job]")
    )
    assert "2" in browser.find_element(By.ID, "flash").text


def test_schedules_page(browser: webdriver.Chrome, console: Console) -> None:
    as_user(browser, console, "alice")
    browser.get(console.url + "/schedules")
    wait(browser).until(EC.presence_of_element_located((By.ID, "nightly-report")))
    row = browser.find_element(By.ID, "nightly-report").text
    assert "yaml" in row and "0 3 * * *" in row
    shot(browser, "schedules")


def test_a_viewer_cannot_act(browser: webdriver.Chrome, console: Console) -> None:
    log_in(browser, console, "victor")
    for path in ("/", "/queues/default", "/dead-letters", "/jobs/browser-dies", "/schedules"):
        browser.get(console.url + path)
        assert not browser.find_elements(By.CSS_SELECTOR, "button.act, button.bulk"), path
    status = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        fetch('/api/v1/queues/default/pause', {method: 'POST', headers: {'X-CSRF-Token': csrf}})
          .then(r => done(r.status));
        """
    )
    assert status == 403
