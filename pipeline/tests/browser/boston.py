"""A marathon runner found and followed on the spectator page (headless Chromium).

Usage: boston.py URL#bib=BIB&name=NAME OUT_DIR. The page of a `pace run`
replaying the Boston Marathon 2015 (26,598 runners, chip-timed) watches it
through a window of the ranking. Typing the runner's bib into the search box
follows them: their splits appear, each with its mat, net time and
positions (overall, in their gender, in their division), and while they
race, their projected finish. Typing another runner's name (not in the
window) follows them too. Filtering the leaderboard by gender shows only
women, placed 1, 2, 3… among women. Saves boston.png in OUT_DIR and prints
what it saw as JSON. Exits non-zero on any failure.
"""
import json
import sys
from urllib.parse import parse_qs

from playwright.sync_api import sync_playwright

from chromium import launch, open_page, until as wait_until


def until(page, condition, what, timeout=None):
    wait_until(page, condition, what, "boston", timeout)


# The replay is paced (90 times real time): the runner's 10K read comes
# about 48 s in, and they race for four minutes. A busy machine (make test
# runs pages and pipelines side by side) may take longer than a minute to
# take in the start (26,598 entrants and start reads) or to show a read;
# what the page waits for comes, or the runner finishes first.
PACED = 170_000


url, out = sys.argv[1], sys.argv[2]
hash = parse_qs(url.split("#", 1)[1])
bib, name = hash["bib"][0], hash["name"][0]
RUNNER = f"document.querySelector('#followed-splits .runner[data-participant=\"{bib}\"]')"

with sync_playwright() as p:
    browser = launch(p)
    errors = []
    page = open_page(browser, url, errors)
    until(page, "pace.race === 'boston-2015' && pace.definition && pace.definition.kind.type === 'mats'", "the Boston race")
    until(page, "pace.windowed && pace.window && pace.window.total > 20000", "a window of a race of thousands", PACED)
    page.fill("#find", bib)
    page.press("#find", "Enter")
    until(page, f"pace.followed.has('{bib}') && {RUNNER}", "the runner followed")
    until(page, f"{RUNNER}.querySelectorAll('li').length >= 2 && {RUNNER}.querySelector('.eta') && {RUNNER}.querySelector('.now')",
          "two splits, a projected finish and where they are now", PACED)
    # Between mats the runner moves on: the race's clock passes their last
    # read, and where they are now passes their last mat.
    until(page, f"(() => {{ const n = {RUNNER}.querySelector('.now'), row = pace.followed.get('{bib}');"
                f" return n && row && parseFloat(n.innerText.split(' ')[1]) * 1000 > row.distance_m + 50; }})()",
          "the runner between mats", PACED)
    splits = page.evaluate(f"[...{RUNNER}.querySelectorAll('li')].map(li => li.innerText)")
    eta = page.evaluate(f"{RUNNER}.querySelector('.eta')?.innerText")
    now = page.evaluate(f"{RUNNER}.querySelector('.now').innerText")
    last_mat = page.evaluate(f"pace.followed.get('{bib}').distance_m")
    # A name not in the window: the edge finds it.
    page.fill("#find", name)
    page.press("#find", "Enter")
    until(page, f"[...pace.followed.values()].some(r => r && r.name === {json.dumps(name)})", "the runner found by name")
    found = page.evaluate(f"[...pace.followed.values()].find(r => r && r.name === {json.dumps(name)}).participant")
    # Women only, placed among women.
    until(page, "!document.getElementById('filters').hidden && document.querySelector('#gender option[value=F]')", "the gender filter")
    page.select_option("#gender", "F")
    until(page, "pace.filtered && pace.filtered.length >= 20", "the women's leaderboard")
    women = page.evaluate("""[...document.querySelectorAll('#rows tr')].map(tr => ({
        place: tr.querySelector('td.place').innerText,
        tag: tr.querySelector('td.name small')?.innerText || '',
        participant: tr.dataset.participant }))""")
    places = [int(w["place"]) for w in women]
    if places != list(range(1, len(women) + 1)):
        sys.exit(f"boston: the women's places are not 1, 2, 3…: {places}")
    if not all(w["tag"].startswith("F") for w in women):
        sys.exit(f"boston: a man in the women's leaderboard: {women}")
    women_total = page.evaluate("pace.filteredTotal")
    # One division: its runners only, placed among themselves.
    page.select_option("#gender", "")
    page.select_option("#category", "F40-44")
    until(page, "pace.filtered && pace.filtered.length >= 20 && pace.filter.category === 'F40-44'"
                " && [...document.querySelectorAll('#rows td.name small')].every(s => s.innerText.startsWith('F40-44'))",
          "the F40-44 leaderboard")
    division = page.evaluate("[...document.querySelectorAll('#rows td.place')].map(td => +td.innerText)")
    if division != list(range(1, len(division) + 1)):
        sys.exit(f"boston: the F40-44 places are not 1, 2, 3…: {division}")
    page.screenshot(path=f"{out}/boston.png", full_page=True)
    if errors:
        sys.exit(f"boston: script errors on the page: {errors}")
    print(json.dumps({"bib": bib, "splits": splits, "eta": eta, "now": now, "last_mat_m": last_mat, "total": page.evaluate("pace.window.total"),
                      "found": found, "women": women[:3], "division_rows": len(division), "women_total": women_total}))
    browser.close()
