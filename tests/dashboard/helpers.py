"""Helpers for the dashboard's sandbox and browser tests.

- ``dashboard_process``: a real ``deployctl dashboard`` process (so its RSS can be read and
  it sees the cluster only through the kubeconfig it is given); its URL is the line it
  prints on stdout once it serves.
- ``browser``: Debian's Chromium driven by chromedriver through Selenium, headless, with
  a fresh profile; skips the test with one line where either is missing.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until

__all__ = ["browser", "dashboard_process", "full_page", "save_screenshot", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Screenshots for docs/ are refreshed only when asked: a plain test run leaves the tree clean.
SCREENSHOTS_ENV = "DEPLOYCTL_UPDATE_SCREENSHOTS"
DOCS_IMAGES = ROOT / "docs" / "images"


class DashboardProcess:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> int:
        """Resident set size, from /proc (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def dashboard_process(
    kubeconfig: Path | str,
    namespace: str,
    tmp_path: Path,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[DashboardProcess]:
    log = tmp_path / f"dashboard-{time.monotonic_ns()}.log"
    command = [
        sys.executable,
        "-m",
        "controller.cli",
        "dashboard",
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        "--address",
        "127.0.0.1:0",
        *args,
    ]
    with log.open("w") as sink:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            url = lines.get(timeout=timeout).strip()
        except queue.Empty:
            url = ""
        if not url.startswith("http"):
            pytest.fail(
                f"deployctl dashboard did not start (exit status {process.poll()}, first line "
                f"{url!r}): {log.read_text()[-3000:]}"
            )
        yield DashboardProcess(process, url, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        stdout.close()


@contextmanager
def browser(tmp_path: Path, *, width: int = 1280, height: int = 1800) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("no chromium/chromedriver: apt-get install -y chromium chromium-driver")
    # Selenium Manager must not try to download a driver or a browser: both are given.
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path / f"chromium-{time.monotonic_ns()}"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """Into the test's directory, and into docs/images/ when refreshing them."""
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get(SCREENSHOTS_ENV):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / name)
    return path


def full_page(driver: Any) -> None:
    """Size the window to the whole page, so a screenshot shows all of it."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height + 40, 800), 4000))


def text_of(driver: Any, by: str, value: str, *, attempts: int = 20) -> str:
    """The text of the element ``value`` finds, read again when the page redrew it
    between finding and reading (the page redraws on every update)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(attempts - 1):
        try:
            return str(driver.find_element(by, value).text)
        except StaleElementReferenceException:
            continue
    return str(driver.find_element(by, value).text)


def texts_of(driver: Any, css: str) -> list[str]:
    """The text of every element ``css`` selects, read in one script (no element can go
    stale between finding and reading)."""
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);", css
        )
    )
