"""Accounts on the page of a running `pace run`, in headless Chromium, with
two browser contexts (two people, no token given to either).

Usage: account.py BASE_URL OUT_DIR. Ann signs up from the page's header
form and is signed in as herself; she posts in the lobby. Bob signs up in
a context of his own and sees her message; he posts, and Ann's page shows
his. A wrong password gets an error and no session. Ann opens a direct
conversation with Bob and writes; Bob finds it in his list (as "✉ ann •
1 new"), reads her, and the list says he has.  Ann logs out: the form is back and her tokens are gone. Saves account-ann.png and account-bob.png
in OUT_DIR and prints what the pages saw as JSON. Exits non-zero on any
failure.
"""
import json
import sys

from playwright.sync_api import sync_playwright

from chromium import launch, until as wait_until

base, out = sys.argv[1:3]


def until(page, condition, what):
    wait_until(page, condition, what, "account")


with sync_playwright() as p:
    browser = launch(p)
    errors = []

    def person():
        ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/")
        until(page, "pace.socket && pace.socket.readyState === 1", "the connection")
        return page

    def sign_up(page, user, password):
        page.fill("#acct-user", user)
        page.fill("#acct-pass", password)
        page.click("#signup")
        until(page, f"document.getElementById('me-name').textContent === {json.dumps(user)}", f"{user} signed in")
        until(page, "pace.socket && pace.socket.readyState === 1 && pace.room === 'lobby'", "the lobby")

    def say(page, text):
        page.fill("#text", text)
        page.press("#text", "Enter")

    def heard(page, user, text):
        until(page, f"pace.messages.some(m => m.user === {json.dumps(user)} && m.text === {json.dumps(text)})",
              f"{user}'s {text!r}")

    a = person()
    sign_up(a, "ann", "ann's long password")
    say(a, "hello from ann")
    heard(a, "ann", "hello from ann")

    b = person()
    b.fill("#acct-user", "ann")
    b.fill("#acct-pass", "not ann's password")
    b.click("#account button:not([id])")
    until(b, "document.getElementById('acct-msg').textContent.includes('wrong user or password')", "a wrong password refused")
    wrong = b.evaluate("localStorage.getItem('pace-refresh')")
    sign_up(b, "bob", "bob's long password")
    heard(b, "ann", "hello from ann")
    say(b, "hi ann, bob here")
    heard(a, "bob", "hi ann, bob here")
    lobby = b.evaluate("pace.messages.map(m => m.user + ': ' + m.text)")

    # A direct message: Ann opens her conversation with Bob and writes;
    # Bob finds it in his list and reads it.
    a.fill("#dm-with", "bob")
    a.press("#dm-with", "Enter")
    until(a, "pace.room && pace.room.startsWith('dm~') && pace.conversations.get(pace.room) === 'bob'", "Ann in her conversation with Bob")
    dm = a.evaluate("pace.room")
    say(a, "psst, bob")
    heard(a, "ann", "psst, bob")
    option = f"[...document.querySelectorAll('#room option')].find(o => o.value === {json.dumps(dm)})"
    until(b, f"{option}?.textContent === '✉ ann • 1 new'", "the conversation in Bob's list, one message unread")
    b.select_option("#room", dm)
    heard(b, "ann", "psst, bob")
    bob_dm = b.evaluate("pace.messages.map(m => m.user + ': ' + m.text)")
    # Read: his marker is sent, and the list says so.
    until(b, f"{option}?.textContent === '✉ ann'", "the conversation read")
    a.screenshot(path=f"{out}/account-ann.png", full_page=True)
    b.screenshot(path=f"{out}/account-bob.png", full_page=True)
    a.click("#logout")
    until(a, "!document.getElementById('account').hidden && document.getElementById('acct-msg').textContent === 'logged out'", "Ann logged out")
    left = a.evaluate("[localStorage.getItem('pace-token'), localStorage.getItem('pace-refresh')]")
    if errors:
        sys.exit(f"account: script errors on the page: {errors}")
    print(json.dumps({"refresh_after_wrong_password": wrong, "tokens_after_logout": left,
                      "bob_sees_in_lobby": lobby, "dm": dm, "bob_sees_in_dm": bob_dm}))
    browser.close()
