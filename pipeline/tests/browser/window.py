"""A race too big to send whole, in the spectator page (headless Chromium).

Usage: window.py URL OUT_DIR. The page of a `pace run` whose built-in race
has thousands of runners watches it through a window of the ranking
(PROTOCOL.md, "Windows"): the leaderboard is as tall as the race, holds
only the rows near what is in view, and scrolling it to the middle and to
the end moves the window there. Saves window.png in OUT_DIR and prints what
it saw as JSON (the most rows any frame carried, the rows held, the race's
size). A runner clicked in the middle of the race is followed and stays in
view, moving, back at the top. Exits non-zero on any failure.
"""
import json
import sys

from playwright.sync_api import sync_playwright

from chromium import launch, open_page, until as wait_until


def until(page, condition, what):
    wait_until(page, condition, what, "window")


url, out = sys.argv[1], sys.argv[2]
SHOWN = "[...document.querySelectorAll('#rows tr:not(.pad)')].map(t => +t.cells[0].innerText)"

with sync_playwright() as p:
    browser = launch(p)
    errors = []
    page = open_page(browser, url, errors)
    until(page, "pace.windowed && pace.window && pace.window.total >= 2000", "a windowed race of thousands")
    until(page, f"{SHOWN}.length >= 20 && {SHOWN}[0] === 1", "the top of the leaderboard")
    board = "document.querySelector('.board')"
    until(page, f"{board}.scrollHeight >= pace.window.total * 20", "a leaderboard as tall as the race")
    total = page.evaluate("pace.window.total")

    def held():
        n = page.evaluate("pace.rows.size")
        if n > 500:
            sys.exit(f"window: the page holds {n} rows")
        return n

    held()
    seq = page.evaluate("pace.seq")
    until(page, f"pace.seq > {seq}", "changes inside the window")

    # The middle of the race: the window follows the scroll.
    page.evaluate(f"{board}.scrollTop = {board}.scrollHeight / 2")
    until(page, f"pace.window.from > {total} / 4 && {SHOWN}.some(r => r > {total} / 3)", "the middle of the race")
    middle = page.evaluate(SHOWN)
    held()
    # Follow a runner from the middle: it stays in view wherever the window goes.
    # Picked and clicked in one step: between two steps the runner can
    # leave the window (it moves, or the window does) and take its row along.
    followed, picked_rank = page.evaluate(
        "(() => { const rows = [...document.querySelectorAll('#rows tr:not(.pad)')];"
        " const row = rows[Math.floor(rows.length / 2)]; row.click();"
        " return [row.dataset.participant, +row.cells[0].innerText]; })()"
    )
    if picked_rank < total / 4:
        sys.exit(f"window: the runner picked in the middle had rank {picked_rank}")
    until(page, f"pace.followed.get('{followed}') && document.querySelectorAll('#followed tr').length === 1", "the followed runner")

    # The end of the race.
    page.evaluate(f"{board}.scrollTop = {board}.scrollHeight")
    until(page, f"pace.window.to === pace.window.total && {SHOWN}.at(-1) === pace.window.total", "the last rank")
    end = page.evaluate(SHOWN)
    held()

    # Back to the top: rank 1 again.
    page.evaluate(f"{board}.scrollTop = 0")
    until(page, f"pace.window.from === 1 && {SHOWN}[0] === 1", "the top again")
    # The followed table shows the runner clicked in the middle, at the rank
    # its own subscription gives (a live race moves ranks a lot in seconds,
    # so where it ranks now says nothing about the page). Read in one step,
    # once the page has drawn its latest frame: a frame between two reads
    # moves the rank under them.
    followed_row = (
        "(() => { const t = document.querySelector('#followed tr'), r = pace.followed.get('%s');"
        " return t && r ? [t.dataset.participant, +t.cells[0].innerText, r.rank] : null; })()" % followed
    )
    until(page, f"(() => {{ const s = {followed_row}; return s && s[0] === '{followed}' && s[1] === s[2]; }})()",
          "the followed runner in its table, at its subscription's rank")
    seen = page.evaluate(f"pace.followed.get('{followed}').last_seen")
    until(page, f"pace.followed.get('{followed}').last_seen !== {json.dumps(seen)}", "the followed runner moving")

    page.screenshot(path=f"{out}/window.png")
    saw = page.evaluate("({most_rows: pace.mostRows, held: pace.rows.size, total: pace.window.total})")
    browser.close()
    if errors:
        sys.exit(f"window: script errors: {errors}")
    saw.update({"middle": middle[:3], "end": end[-3:]})
    print(json.dumps(saw))
