"""The tournament draw on the page of a running `pace run`, in headless
Chromium, with two browser contexts (two people, each with a token).

Usage: tournament.py BASE_URL OUT_DIR ANN_TOKEN BOB_TOKEN. Ann creates a
tournament of two from the page's form, sees its QR code and join link,
joins and chooses a team; Bob opens the join link in a context of his own,
joins, is refused the team Ann holds, chooses another, and the draw is
made: both pages show the same draw, live. Saves tournament-ann.png and
tournament-bob.png in OUT_DIR and prints what each page saw as JSON. Exits
non-zero on any failure.
"""
import json
import sys

from playwright.sync_api import sync_playwright

from chromium import launch, until as wait_until

base, out, ann, bob = sys.argv[1:5]
def until(page, condition, what):
    wait_until(page, condition, what, "tournament")


def draw(page):
    """The draw a page shows: (user, team) by line, and its seed."""
    lines = page.eval_on_selector_all("#t-draw li", "lis => lis.map(l => [l.dataset.user, l.dataset.team])")
    return lines, page.eval_on_selector("#t-draw", "d => d.dataset.seed")


with sync_playwright() as p:
    browser = launch(p)
    errors = []

    def person(url):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        return page

    a = person(f"{base}/#token={ann}")
    until(a, "pace.socket && pace.socket.readyState === 1", "Ann's connection")
    a.fill("#t-new-id", "friday")
    a.fill("#t-new-name", "Friday cup")
    a.fill("#t-new-limit", "2")
    a.click("#t-create button")
    until(a, "pace.tInfo && pace.tInfo.name === 'Friday cup'", "the new tournament on Ann's page")
    until(a, "document.querySelector('#t-qr').complete && document.querySelector('#t-qr').naturalWidth > 0",
          "the QR code of the join link")
    link = a.get_attribute("#t-link", "href")
    if not link.endswith("/?tournament=friday"):
        sys.exit(f"tournament: the join link is {link}")
    a.fill("#t-name", "Ann")
    a.click("#t-join button")
    until(a, "pace.tPlayers.has('ann')", "Ann among the players")
    a.fill("#t-team", "Ajax")
    a.click("#t-choose button")
    until(a, "pace.tPlayers.get('ann')?.team === 'Ajax'", "Ann's team")

    b = person(f"{link}#token={bob}")
    until(b, "pace.tInfo && pace.tInfo.name === 'Friday cup' && pace.tPlayers.has('ann')",
          "the tournament on Bob's page, from the link")
    b.fill("#t-name", "Bob")
    b.click("#t-join button")
    until(a, "pace.tPlayers.has('bob')", "Bob's join, live on Ann's page")
    b.fill("#t-team", "Ajax")
    b.click("#t-choose button")
    until(b, "document.querySelector('#t-msg').textContent.includes('another player chose that team')",
          "Bob refused Ann's team")
    b.fill("#t-team", "Benfica")
    b.click("#t-choose button")
    for page, who in [(a, "Ann"), (b, "Bob")]:
        until(page, "document.querySelectorAll('#t-draw li').length === 2", f"the draw on {who}'s page")
    seen_a, seen_b = draw(a), draw(b)
    if seen_a != seen_b:
        sys.exit(f"tournament: the pages show different draws: {seen_a} vs {seen_b}")
    teams = sorted(team for _, team in seen_a[0])
    if teams != ["Ajax", "Benfica"]:
        sys.exit(f"tournament: the draw deals {teams}")
    a.screenshot(path=f"{out}/tournament-ann.png", full_page=True)
    b.screenshot(path=f"{out}/tournament-bob.png", full_page=True)
    browser.close()
    if errors:
        sys.exit(f"tournament: script errors: {errors}")
    print(json.dumps({"draw": seen_a[0], "seed": seen_a[1], "link": link}))
