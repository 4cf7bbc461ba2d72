#!/usr/bin/env python3
"""Drives seqpipe's dashboard in a headless Chromium (Selenium and chromedriver), as an
operator would, and says what it saw, a line per step; the test that starts it checks each
effect in the store. Exit 0 when every step saw its effect on the page, 1 otherwise.

    drive-dashboard.py URL TOKEN SCREENSHOT CHROMIUM CHROMEDRIVER PROFILE_DIR

The store behind URL holds: job `bad` failed, job `p1` pending, jobs `f1` and `f2` failed
(and no other failed one), and device `d1`.
"""
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

url, token, screenshot, chromium, chromedriver, profile = sys.argv[1:7]
options = webdriver.ChromeOptions()
options.binary_location = chromium
for argument in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--window-size=1280,1000", f"--user-data-dir={profile}"]:
    options.add_argument(argument)
driver = webdriver.Chrome(service=Service(chromedriver), options=options)
# The page redraws its tables every 2 s: an element found just before a redraw is stale;
# the wait then looks again rather than failing.
wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])
failed = False


def step(name, check):
    """Waits (20 s at most) until check() is true; says so either way."""
    global failed
    try:
        wait.until(lambda _: check())
        print(f"ok {name}", flush=True)
    except Exception as error:  # the page did not show it in time
        failed = True
        said = driver.find_element(By.ID, "said").text
        print(f"FAILED {name}: {type(error).__name__}; the page says: {said!r}", flush=True)


def said():
    return driver.find_element(By.ID, "said").text


def click(css, text):
    """Clicks the button with `text` inside the first element `css` matches."""
    for button in driver.find_elements(By.CSS_SELECTOR, css + " button"):
        if button.text == text:
            button.click()
            return True
    return False


try:
    # A job has its own address: opened there, the page shows it.
    driver.get(url + "/jobs/bad")
    step("the job's address opens it", lambda: driver.find_element(By.ID, "joblink").text == "bad"
         and "attempt 1 of 3" in driver.find_element(By.ID, "detail").text)
    driver.execute_script("sessionStorage.setItem('seqpipe-token', arguments[0])", token)

    step("retry by the job's button", lambda: click("#jobactions", "retry"))
    step("the page says what changed", lambda: "job bad was failed; now pending" in said())

    step("cancel a pending job by its row's button", lambda: click('tr[data-job="p1"]', "cancel"))
    step("the page says it was cancelled", lambda: "job p1 was pending; now cancelled" in said())

    Select(driver.find_element(By.ID, "f-status")).select_by_value("failed")
    step("a filter offers a bulk retry", lambda: click("#bulk", "retry all 2"))
    driver.switch_to.alert.accept()
    step("the bulk retry is counted", lambda: "retried 2 of the 2 jobs matching status failed" in said())
    Select(driver.find_element(By.ID, "f-status")).select_by_value("")

    # A waiting job's reason is in its own column, not in the error column.
    def cells(job):
        # Read in one call, so a redraw cannot come between two cells.
        return driver.execute_script(
            "return [...document.querySelectorAll(`tr[data-job='${arguments[0]}'] td`)].map(td => td.title || td.textContent)", job)
    step("a wait reason is not an error", lambda: len(cells("f1")) > 7 and cells("f1")[6] == "" and "paused" in cells("f1")[7])

    # The chart's range is the user's: a week, in hour bars, with its scale.
    Select(driver.find_element(By.ID, "range")).select_by_value("10080")
    step("the chart spans a week", lambda: "runs per 60 minutes" in driver.find_element(By.ID, "chart").text)
    Select(driver.find_element(By.ID, "range")).select_by_value("180")

    def device_row():
        return next((row for row in driver.find_elements(By.CSS_SELECTOR, "#devices tbody tr")
                     if row.find_elements(By.TAG_NAME, "td") and row.find_elements(By.TAG_NAME, "td")[0].text == "d1"), None)

    def press_on_d1(text):
        row = device_row()
        button = next((b for b in row.find_elements(By.TAG_NAME, "button") if b.text == text), None) if row else None
        if button:
            button.click()
        return button is not None

    step("pause a device", lambda: press_on_d1("pause"))
    step("the device shows paused", lambda: "device d1 paused" in said() and "PAUSED" in device_row().text)
    step("resume it", lambda: press_on_d1("resume"))
    step("the device runs again", lambda: "device d1 was paused" in said() and "PAUSED" not in device_row().text)

    # At 1280 px every table fits its panel: nothing behind a scrollbar.
    overflow = driver.execute_script(
        "return [...document.querySelectorAll('section table')].filter(t => t.offsetParent)"
        ".map(t => [t.id, t.scrollWidth, t.parentElement.clientWidth]).filter(([id, w, room]) => w > room)")
    if overflow:
        failed = True
        print(f"FAILED tables wider than their panel at 1280 px: {overflow}", flush=True)
    else:
        print("ok every table fits at 1280 px", flush=True)
    empty = driver.execute_script("return [...document.querySelectorAll('td.none')].map(td => td.closest('table').id)")
    print(f"ok empty panels say none: {', '.join(empty)}" if empty else "FAILED no empty panel says none", flush=True)
    failed = failed or not empty

    # The picture for the README: the failed job `bad` had, opened at its address.
    driver.get(url + "/jobs/bad")
    step("the picture's page is drawn", lambda: driver.find_element(By.ID, "joblink").text == "bad"
         and driver.find_elements(By.CSS_SELECTOR, "#chart svg"))
    driver.set_window_size(1280, driver.execute_script("return document.body.scrollHeight") + 20)
    driver.save_screenshot(screenshot)
    print(f"ok screenshot {screenshot}", flush=True)
finally:
    driver.quit()
sys.exit(1 if failed else 0)
