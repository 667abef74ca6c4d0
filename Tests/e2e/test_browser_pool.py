"""The Chromium pool of browser.py: a test reuses a worker's Chromium but never its state."""
from __future__ import annotations

from browser import chromium_sessions


def test_a_reused_chromium_starts_each_test_with_a_fresh_context(browser_pool, page_server, settled_addresses):
    page = f"{page_server}/{'adapter.js'}"
    first = chromium_sessions(browser_pool)
    start = next(first)
    driver = start("first")
    driver.get(page)
    driver.execute_script("localStorage.setItem('left', 'behind'); document.cookie = 'crumb=1';")
    assert driver.execute_script("return localStorage.getItem('left')") == "behind"
    first.close()  # the test's end: its contexts close, its Chromium goes back to the pool

    second = chromium_sessions(browser_pool)
    again = next(second)("second")
    assert again is driver, "the pool did not hand back the idle Chromium"
    again.get(page)
    assert again.execute_script("return [localStorage.getItem('left'), document.cookie]") == [None, ""]
    second.close()
