"""What the page tests share: Debian's Chromium, launched off this
machine's closed network, and waiting for a condition with a clear message."""
import sys

# The flags keep Chromium off the network it cannot reach here.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 60_000


def launch(playwright):
    """Headless Debian Chromium."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)


def open_page(browser, url, errors):
    """A 1400×1000 page of `url` whose script errors go to `errors`."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page


def until(page, condition, what, test="page", timeout=None):
    """Waits for `condition` (JavaScript) on `page`: up to a minute, or
    `timeout` ms where what it waits for is paced by a replay."""
    try:
        page.wait_for_function(condition, timeout=timeout or WAIT)
    except Exception as e:  # a clear message, not a 60 s mystery
        sys.exit(f"{test}: timed out waiting for {what} ({condition}): {e}")
