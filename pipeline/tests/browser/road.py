"""The built-in chip-timed road race on the spectator page (headless Chromium).

Usage: road.py URL OUT_DIR. Picks the road race `city-5k-1` of a `pace run`
(joined ten minutes after its gun): the map draws its route and its four
mats. Runners who carry a GPS tracker are dots at their fixes, and their
rows are where GPS puts them, between mats; the others are dots where their
distance, projected between mats from their latest pace, puts them on the
route, and such a dot moves on between the runner's reads. Saves road.png
in OUT_DIR and prints what it saw as JSON. Exits non-zero on any failure.
"""
import json
import sys

from playwright.sync_api import sync_playwright

from chromium import launch, open_page, until as wait_until


def until(page, condition, what, timeout=None):
    wait_until(page, condition, what, "road", timeout)


RACE = "city-5k-1"
CHIP_ONLY = "[...pace.rows.values()].filter(r => r.status === 'racing' && !r.position && r.speed_mps != null)"
DOT = "document.querySelector(`#map .dot[data-participant=\"${r.participant}\"]`)"

url, out = sys.argv[1], sys.argv[2]
with sync_playwright() as p:
    browser = launch(p)
    errors = []
    page = open_page(browser, url, errors)
    until(page, f"[...document.querySelectorAll('#race option')].some(o => o.value === '{RACE}')", "the road race listed")
    page.select_option("#race", RACE)
    until(page, f"pace.race === '{RACE}' && pace.definition && pace.definition.kind.type === 'mats'"
                " && document.querySelectorAll('#map .mat').length === 4", "the route and its four mats")
    until(page, "document.querySelectorAll('#map .dot.projected').length >= 20"
                " && document.querySelectorAll('#map .dot:not(.projected)').length >= 10",
          "runners on the map, by GPS and projected")
    # GPS puts a runner between mats (the row's distance is no mat's).
    until(page, "[...pace.rows.values()].some(r => r.position && r.status === 'racing'"
                " && !pace.definition.kind.mats.some(m => m.distance_m === r.distance_m))", "a GPS runner between mats")
    # Chip-only runners past their first mat: where their dots are now.
    until(page, f"{CHIP_ONLY}.length >= 5", "chip-only runners with a pace")
    before = page.evaluate(f"Object.fromEntries({CHIP_ONLY}.map(r => [r.participant,"
                           f" {{ d: r.distance_m, x: {DOT}.getAttribute('cx'), y: {DOT}.getAttribute('cy') }}]))")
    # One of them moves on, with no new read (their distance unchanged).
    moved = f"""(() => {{ const before = {json.dumps(before)};
        return Object.entries(before).find(([p, b]) => {{ const r = pace.rows.get(p);
            const d = r && document.querySelector(`#map .dot[data-participant="${{p}}"]`);
            return d && r.distance_m === b.d && (d.getAttribute('cx') !== b.x || d.getAttribute('cy') !== b.y); }}) || null; }})()"""
    until(page, moved, "a chip-only runner's dot moving on between mats")
    runner = page.evaluate(moved)[0]
    gps = page.evaluate("[...pace.rows.values()].filter(r => r.position).length")
    projected = page.evaluate("document.querySelectorAll('#map .dot.projected').length")
    page.screenshot(path=f"{out}/road.png", full_page=True)
    if errors:
        sys.exit(f"road: script errors on the page: {errors}")
    print(json.dumps({"moved": runner, "was": before[runner], "gps_rows": gps, "projected_dots": projected,
                      "mats": page.evaluate("document.querySelectorAll('#map .mat').length")}))
    browser.close()
