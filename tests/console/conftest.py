"""A real gateway on loopback and a real headless Chromium (Debian's, driven by chromedriver).

Nothing is downloaded: Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver
(`hack/system-deps.sh` installs them for `make test`), and Selenium Manager is kept offline.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.gateway.conftest import _secrets_env, start_gateway  # noqa: F401  (fixtures)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: run `bash hack/system-deps.sh chromium chromedriver:chromium-driver`"
        )
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def console_config(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "auth": {"api_keys": [{"name": "tests", "key": {"env": "AIMM_TEST_API_KEY"}, "role": "user"}]},
        "admin": {"token": {"env": "AIMM_TEST_ADMIN_TOKEN"}},
        "console": {"enabled": True},
        "models": [
            {"name": "fast", "provider": "mock", "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}},
            {
                "name": "slow",
                "provider": "mock",
                "mock": {"latency_ms": 3},
                "pricing": {"input_per_1k": "0.003", "output_per_1k": "0.006"},
            },
        ],
        "routes": [{"name": "smart", "algorithm": "round_robin", "targets": [{"model": "fast"}, {"model": "slow"}]}],
        "budgets": [{"name": "monthly", "limit_usd": "5", "period": "monthly"}],
        "server": {"default_model": "smart"},
    }
    config.update(extra)
    return config
