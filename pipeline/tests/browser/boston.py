"""A marathon runner found and followed on the spectator page (headless Chromium).

Usage: boston.py URL#bib=BIB OUT_DIR. The page of a `pace run` replaying the
Boston Marathon 2015 (26,598 runners, chip-timed) watches it through a
window of the ranking. Typing the runner's bib into the search box follows
them: their splits appear, each with its mat, net time and position, and
while they race, their projected finish. Saves boston.png in OUT_DIR and
prints what it saw as JSON. Exits non-zero on any failure.
"""
import json
import sys

from playwright.sync_api import sync_playwright

from chromium import launch, open_page, until as wait_until


def until(page, condition, what):
    wait_until(page, condition, what, "boston")


url, out = sys.argv[1], sys.argv[2]
bib = url.split("#bib=", 1)[1]
RUNNER = f"document.querySelector('#followed-splits .runner[data-participant=\"{bib}\"]')"

with sync_playwright() as p:
    browser = launch(p)
    errors = []
    page = open_page(browser, url, errors)
    until(page, "pace.race === 'boston-2015' && pace.definition && pace.definition.kind.type === 'mats'", "the Boston race")
    until(page, "pace.windowed && pace.window && pace.window.total > 20000", "a window of a race of thousands")
    page.fill("#find", bib)
    page.press("#find", "Enter")
    until(page, f"pace.followed.has('{bib}') && {RUNNER}", "the runner followed")
    until(page, f"{RUNNER}.querySelectorAll('li').length >= 2 && {RUNNER}.querySelector('.eta')",
          "two splits and a projected finish")
    splits = page.evaluate(f"[...{RUNNER}.querySelectorAll('li')].map(li => li.innerText)")
    eta = page.evaluate(f"{RUNNER}.querySelector('.eta').innerText")
    page.screenshot(path=f"{out}/boston.png", full_page=True)
    if errors:
        sys.exit(f"boston: script errors on the page: {errors}")
    print(json.dumps({"bib": bib, "splits": splits, "eta": eta, "total": page.evaluate("pace.window.total")}))
    browser.close()
