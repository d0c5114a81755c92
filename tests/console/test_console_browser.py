"""The web console in a real headless Chromium: log in, live numbers, toggling a model changes
routing, the playground, role-aware navigation; a screenshot of every page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import ARTIFACTS, console_config
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, RunningGateway

Start = Callable[[dict[str, Any]], RunningGateway]
PAGES = ("overview", "models", "routes", "budgets", "keys", "audit", "playground")


def wait(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any], seconds: float = 10) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(condition)


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def log_in(driver: webdriver.Chrome, url: str, key: str) -> None:
    driver.get(f"{url}/console")
    field = driver.switch_to.active_element  # the key field has focus on load: type, press Enter
    assert field.get_attribute("id") == "api-key"
    field.send_keys(key, Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "app").is_displayed())
    assert not driver.find_element(By.ID, "login").is_displayed()


def go(driver: webdriver.Chrome, page: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'#nav a[href="#{page}"]').click()
    wait(driver, lambda d: d.find_element(By.ID, f"page-{page}").is_displayed())


def queries(url: str, n: int, model: str = "smart") -> list[str]:
    with httpx.Client(headers={"authorization": f"Bearer {API_KEY}"}) as client:
        return [
            client.post(f"{url}/api/v1/query", json={"prompt": f"q{i}", "model": model}).json()["model"]
            for i in range(n)
        ]


def test_console_is_off_unless_enabled(start_gateway: Start) -> None:
    gw = start_gateway(console_config(console={"enabled": False}))
    resp = httpx.get(f"{gw.url}/console")
    assert resp.status_code == 404 and "console.enabled" in resp.json()["error"]["message"]


def test_assets_load_fast_and_offline(browser: webdriver.Chrome, start_gateway: Start) -> None:
    gw = start_gateway(console_config())
    browser.get(f"{gw.url}/console")
    wait(browser, lambda d: d.execute_script("return document.readyState") == "complete")
    loaded_ms = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
    )
    assert 0 < loaded_ms < 1000, loaded_ms
    hosts = browser.execute_script("return performance.getEntriesByType('resource').map(r => new URL(r.name).host);")
    assert hosts and set(hosts) == {gw.url.removeprefix("http://")}  # nothing from anywhere else


def test_admin_sees_live_numbers_toggles_a_model_and_routing_follows(
    browser: webdriver.Chrome, start_gateway: Start
) -> None:
    gw = start_gateway(console_config())
    log_in(browser, gw.url, ADMIN_TOKEN)
    assert text(browser, "who-role") == "admin"
    wait(browser, lambda d: text(d, "live-state") == "live")
    wait(browser, lambda d: text(d, "m-total") == "0")
    assert set(queries(gw.url, 4)) == {"fast", "slow"}  # round robin over both
    wait(browser, lambda d: text(d, "m-total") == "4")  # the live number moved, over the WebSocket
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tail tr")) == 4)
    shot(browser, "overview")

    go(browser, "models")
    toggle = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'button[data-model="fast"]'))
    assert toggle.get_attribute("aria-pressed") == "true"
    toggle.click()
    wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, 'button[data-model="fast"]').get_attribute("aria-pressed") == "false",
    )
    assert "fast disabled" in text(browser, "notice")
    assert set(queries(gw.url, 6)) == {"slow"}  # routing changed: the route skips the disabled model
    shot(browser, "models-toggle")
    go(browser, "overview")
    wait(browser, lambda d: text(d, "m-total") == "10")
    newest = [r.get_attribute("data-model") for r in browser.find_elements(By.CSS_SELECTOR, "#tail tr")[:6]]
    assert newest == ["slow"] * 6

    go(browser, "routes")
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-route="smart"] tr[data-target="fast"]'))
    assert (
        "disabled" in row.text and "round_robin" in browser.find_element(By.CSS_SELECTOR, '[data-route="smart"]').text
    )

    go(browser, "budgets")
    budget = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-budget="monthly"]'))
    assert "$5.00" in budget.text and "monthly" in budget.text  # limit and period from GET /api/v1/budgets
    shot(browser, "budgets")
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    made = [
        httpx.post(f"{gw.url}/admin/keys", headers=admin, json=body).json()
        for body in (
            {"name": "team-a-app", "role": "user", "owner": "team-a", "models": ["fast"]},
            {"name": "dashboards", "role": "viewer", "owner": "ops"},
            {"name": "old-ci", "role": "developer", "owner": "ci"},
        )
    ]
    assert httpx.delete(f"{gw.url}/admin/keys/{made[2]['id']}", headers=admin).status_code == 200
    go(browser, "keys")
    rows = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#keys tr[data-key]") or None)
    listed = {r.get_attribute("data-key"): r.text for r in rows}
    assert set(listed) == {"team-a-app", "dashboards", "old-ci"}
    assert "revoked" in listed["old-ci"] and "active" in listed["team-a-app"] and "fast" in listed["team-a-app"]
    assert " UTC" in listed["dashboards"] and all(k["key"] not in browser.page_source for k in made)  # no secrets
    shot(browser, "keys")
    go(browser, "audit")
    wait(browser, lambda d: d.find_element(By.ID, "audit").text.strip() != "")
    shot(browser, "audit")
    assert "no readable audit trail" in text(browser, "audit").lower()  # console_config writes it to stdout only


def test_admin_sets_a_weight_by_keyboard_and_weighted_routing_follows(
    browser: webdriver.Chrome, start_gateway: Start
) -> None:
    routes = [{"name": "smart", "algorithm": "weighted", "targets": [{"model": "fast"}, {"model": "slow"}]}]
    gw = start_gateway(console_config(routes=routes))
    before = queries(gw.url, 12)
    assert set(before) == {"fast", "slow"}  # equal weights: both get picked
    log_in(browser, gw.url, ADMIN_TOKEN)
    go(browser, "models")
    field = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'form[data-weight="fast"] input'))
    label = browser.find_element(By.CSS_SELECTOR, f'label[for="{field.get_attribute("id")}"]')
    assert label.get_attribute("textContent") == "Routing weight of fast"
    wait(browser, lambda d: field.get_attribute("value") == "1")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("-2", Keys.ENTER)  # refused in the page (the input says min 0): nothing is sent
    wait(browser, lambda d: "Weight of fast" in text(d, "notice"))
    assert gw.gateway.runtime.models["fast"].weight == 1
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("0", Keys.ENTER)
    wait(browser, lambda d: "fast now weighs 0" in text(d, "notice"))
    assert browser.switch_to.active_element.get_attribute("id") == "weight-fast"  # focus stays put
    assert set(queries(gw.url, 12)) == {"slow"}  # weight 0: never the weighted route's pick
    go(browser, "routes")
    cell = wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-route="smart"] tr[data-target="fast"] [data-col="weight"]'),
    )
    assert cell.text == "0" and "weighted" in browser.find_element(By.CSS_SELECTOR, '[data-route="smart"]').text
    slow_rpm = '[data-route="smart"] tr[data-target="slow"] td[data-rpm]'
    expected = f"{before.count('slow') + 12:.1f}"  # its share before, then all 12 since
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, slow_rpm).text == expected)
    shot(browser, "routes")
    go(browser, "models")
    shot(browser, "models")


def test_playground_compares_models_side_by_side(browser: webdriver.Chrome, start_gateway: Start) -> None:
    gw = start_gateway(console_config())
    log_in(browser, gw.url, ADMIN_TOKEN)
    go(browser, "playground")
    boxes = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'input[name="play-model"]'))
    assert sorted(b.get_attribute("value") for b in boxes) == ["fast", "slow"]
    for box in boxes:
        if not box.is_selected():
            box.click()
    browser.find_element(By.ID, "play-run").click()
    cards = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#play-results .result") or None, 15)
    assert sorted(c.get_attribute("data-model") for c in cards) == ["fast", "slow"]
    for card in cards:
        assert "Latency" in card.text and "Tokens" in card.text and "Cost" in card.text
    summary = text(browser, "play-summary")
    assert "Agreement score" in summary and "fastest" in summary
    shot(browser, "playground")


def test_navigation_follows_the_role(browser: webdriver.Chrome, start_gateway: Start) -> None:
    gw = start_gateway(console_config())
    log_in(browser, gw.url, API_KEY)  # a config key: the user role, which may query but not read
    assert text(browser, "who-role") == "user"
    visible = [
        a.get_attribute("href").rsplit("#", 1)[1]
        for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")
        if a.is_displayed()
    ]
    assert visible == ["playground"]
    assert browser.find_element(By.ID, "page-playground").is_displayed()
    time.sleep(0.3)
    assert text(browser, "live-state") == "offline"  # the live feed is for viewers and up


def test_a_wrong_key_is_refused_with_a_message(browser: webdriver.Chrome, start_gateway: Start) -> None:
    gw = start_gateway(console_config())
    browser.get(f"{gw.url}/console")
    browser.switch_to.active_element.send_keys("not-a-key", Keys.ENTER)
    wait(browser, lambda d: "invalid API key" in text(d, "login-error"))
    assert not browser.find_element(By.ID, "app").is_displayed()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_a_heading_and_labelled_controls(
    browser: webdriver.Chrome, start_gateway: Start, page: str
) -> None:
    gw = start_gateway(console_config())
    log_in(browser, gw.url, ADMIN_TOKEN)
    go(browser, page)
    section = browser.find_element(By.ID, f"page-{page}")
    assert section.find_element(By.TAG_NAME, "h2").text
    unlabelled = browser.execute_script(
        """return [...arguments[0].querySelectorAll('input, textarea, select')].filter(c =>
             c.type !== 'checkbox' ? !(c.id && document.querySelector(`label[for="${c.id}"]`)) : !c.closest('label')
           ).map(c => c.outerHTML);""",
        section,
    )
    assert unlabelled == []
