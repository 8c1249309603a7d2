"""What the browser tests share: Debian's Chromium for Playwright, logging into the Airflow UI, where screenshots go.

Playwright drives headless Debian Chromium (its own browser download is not used). `make test` installs the
`chromium` package where it can; elsewhere the browser tests are skipped with the reason.
"""

import shutil

import pytest

from devstack.stack import ADMIN_PASSWORD, ADMIN_USER
from ticketflow.settings import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Chromium not found: install Debian's `chromium` package (make test does so when run as root)")
    return found


def log_in(page, stack, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> None:
    page.goto(stack.api_url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Ticketflow", exact=True).wait_for()
