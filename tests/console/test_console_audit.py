"""The console's Audit page in a real headless Chromium: the trail from GET /admin/audit, newest
first, older records on demand, a tampered record marked; hidden without a readable trail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.console.conftest import console_config
from tests.console.test_console_browser import go, log_in, shot, wait
from tests.gateway.conftest import ADMIN_TOKEN, RunningGateway

Start = Callable[[dict[str, Any]], RunningGateway]


def _rows(driver: webdriver.Chrome) -> list[list[str]]:
    """Each row's cells and class, read in one script (the page may re-render between two reads)."""
    rows: list[list[str]] = driver.execute_script(
        "return [...document.querySelectorAll('#audit-rows tr')]"
        ".map(tr => [...[...tr.querySelectorAll('td')].map(td => td.innerText), tr.className])"
    )
    return rows


def text(driver: webdriver.Chrome, element_id: str) -> str:
    found: str = driver.execute_script("return document.getElementById(arguments[0])?.innerText ?? ''", element_id)
    return found


def test_audit_page_lists_the_trail_pages_and_marks_tampering(
    browser: webdriver.Chrome, start_gateway: Start, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.jsonl"
    config = console_config(hardening={"audit": {"sink": "file", "path": str(trail)}})
    config["limits"] = {"auth_failures_per_minute": 1000}
    gw = start_gateway(config)
    with httpx.Client(base_url=gw.url, timeout=30) as c:  # 55 auth failures, then one refused admin call
        for _ in range(55):
            assert c.get("/v1/models", headers={"authorization": "Bearer sk-nobody"}).status_code == 401
        assert c.get("/admin/models/status", headers={"authorization": "Bearer wrong"}).status_code == 403
    log_in(browser, gw.url, ADMIN_TOKEN)
    go(browser, "audit")
    wait(browser, lambda d: len(_rows(d)) == 50)
    rows = _rows(browser)
    assert rows[0][1] == "auth.failure" and rows[0][4] == "denied" and rows[0][5] == "✓ verified"
    assert all(r[5] == "✓ verified" for r in rows)
    assert "Hash chain verified" in text(browser, "audit-chain") and "file" in text(browser, "audit-chain")
    browser.find_element(By.ID, "audit-older").click()  # the page is 50: the other 6 on demand
    wait(browser, lambda d: len(_rows(d)) == 56)
    assert not browser.find_elements(By.ID, "audit-older")
    shot(browser, "audit-trail")

    lines = trail.read_text().splitlines()  # edit the newest record's outcome, then reload the page
    edited = orjson.loads(lines[-1])
    edited["outcome"] = "ok"
    trail.write_text("\n".join([*lines[:-1], orjson.dumps(edited).decode()]) + "\n")
    go(browser, "overview")
    go(browser, "audit")
    wait(browser, lambda d: "failed its hash-chain check" in text(d, "audit-chain"))
    first = _rows(browser)[0]
    assert first[5] == "✗ tampered" and first[6] == "tampered" and first[4] == "ok"


def test_audit_page_explains_when_there_is_no_readable_trail(browser: webdriver.Chrome, start_gateway: Start) -> None:
    gw = start_gateway(console_config())  # audit to stdout only
    log_in(browser, gw.url, ADMIN_TOKEN)
    go(browser, "audit")
    wait(browser, lambda d: "No readable audit trail" in text(d, "audit"))
