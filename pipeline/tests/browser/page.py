"""The spectator page of a running `pace run`, in headless Chromium.

Usage: page.py URL OUT_DIR. Checks that the leaderboard fills and changes,
the map draws the course and moves the runners, the lap chart draws, the
chat shows the room and takes a post, the task form gets a result, and
the page reconnects by itself and resumes with `since`. Saves page.png in
OUT_DIR and prints what it saw as JSON. Exits non-zero on any failure.
"""
import json
import sys
import time

from playwright.sync_api import sync_playwright

from chromium import launch, open_page, until as wait_until

url, out = sys.argv[1], sys.argv[2]
def until(page, condition, what):
    wait_until(page, condition, what, "page")


with sync_playwright() as p:
    browser = launch(p)
    errors = []
    page = open_page(browser, url, errors)
    # The loop race (`demo-1`), whatever the page picked first: the road
    # race's definition may reach the edge first, and its rows change only
    # at its mats.
    until(page, "[...document.querySelectorAll('#race option')].some(o => o.value === 'demo-1')", "the loop race listed")
    if page.evaluate("pace.race") != "demo-1":
        page.select_option("#race", "demo-1")
    until(page, "pace.race === 'demo-1' && document.querySelectorAll('#rows tr').length >= 10", "leaderboard rows")

    def rows():
        return page.eval_on_selector_all("#rows tr", "trs => trs.map(t => t.innerText)")

    first, seq0 = rows(), page.evaluate("pace.seq")
    until(page, f"pace.seq >= {seq0} + 10", "ten more changes")
    deadline = time.time() + 60
    while rows() == first:
        if time.time() > deadline:
            sys.exit("page: the leaderboard rows never changed")
        time.sleep(0.2)
    later = rows()

    until(page, "document.querySelectorAll('#map path.course').length > 0", "the course on the map")
    until(page, "document.querySelectorAll('#map circle.dot').length >= 10", "runners on the map")
    dots0 = page.eval_on_selector_all("#map circle.dot", "cs => cs.map(c => c.getAttribute('cx') + ',' + c.getAttribute('cy'))")
    deadline = time.time() + 60
    while page.eval_on_selector_all("#map circle.dot", "cs => cs.map(c => c.getAttribute('cx') + ',' + c.getAttribute('cy'))") == dots0:
        if time.time() > deadline:
            sys.exit("page: the runners never moved on the map")
        time.sleep(0.2)

    until(page, "document.querySelectorAll('#messages p').length > 0", "chat messages")
    page.fill("#text", "hello from chromium")
    page.click("#say button")
    until(page, "pace.messages.some(m => m.text === 'hello from chromium')", "our own post in the room")

    page.fill("#expr", "(1 + 2) * 3 ^ 2")
    page.click("#calc button")
    until(page, "document.querySelector('#results li[data-status=SUCCESSFUL]') !== null", "a task result")
    result = page.inner_text("#results li")

    # The built-in race's first lap takes minutes: the chart is drawn, empty.
    until(page, "document.querySelectorAll('#chart line.axis').length === 2", "the lap chart's axes")

    # Drop the connection: the page reconnects and resumes where it was.
    connects, resumes, snapshots = page.evaluate("[pace.connects, pace.resumes, pace.snapshots]")
    page.evaluate("pace.socket.close()")
    until(page, f"pace.connects > {connects} && pace.resumes > {resumes}", "a reconnect that resumes")
    resumed_with_snapshot = page.evaluate("pace.snapshots") > snapshots
    seq1 = page.evaluate("pace.seq")
    until(page, f"pace.seq > {seq1}", "changes after the resume")
    # The missed changes came as deltas, not as a fresh snapshot.
    if page.evaluate("pace.snapshots") != snapshots:
        sys.exit("page: the resume fell back to a snapshot")

    page.screenshot(path=f"{out}/page.png", full_page=True)
    browser.close()
    if errors:
        sys.exit(f"page: script errors: {errors}")
    print(json.dumps({
        "rows_before": first[:3], "rows_after": later[:3], "task": result,
        "resumed_with_snapshot": resumed_with_snapshot, "seq": seq1,
    }))
