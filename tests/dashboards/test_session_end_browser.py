"""A page left open when its session ends (here: a logout of the same key in another client)
sends the browser to the login, with ``next=`` the page, at its first refused callback,
instead of keeping the old content on screen under new controls."""

from __future__ import annotations

import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dashboards import session_end
from tests.dashboards.test_dashboard_auth import ORIGIN, login
from tests.support.browser import chromium
from tests.support.live import serve

WAIT_S = 30


def test_the_page_lists_the_session_script(dash_app: Flask, admin_key: str) -> None:
    client = dash_app.test_client()
    assert client.get(session_end.URL).status_code == 302  # behind the login like every page
    assert login(client, admin_key).status_code == 303
    assert f'src="{session_end.URL}"' in client.get("/dashboard/voc").get_data(as_text=True)
    script = client.get(session_end.URL)
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "window.fetch" in script.get_data(as_text=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_callback_refused_401_sends_the_browser_to_the_login(dash_app: Flask,
                                                               admin_key: str) -> None:
    with serve(dash_app) as base, chromium() as driver:
        driver.get(f"{base}/dashboard/login?next=/dashboard/voc")
        driver.find_element(By.ID, "key").send_keys(admin_key)
        driver.find_element(By.ID, "login-submit").click()
        box = WebDriverWait(driver, WAIT_S).until(
            ec.visibility_of_element_located((By.ID, "voc-search")))
        WebDriverWait(driver, WAIT_S).until(
            lambda d: "match" in d.find_element(By.ID, "voc-count").text)
        # Log out with the same key elsewhere: every session of the key ends.
        other = dash_app.test_client()
        assert login(other, admin_key).status_code == 303
        assert other.post("/dashboard/logout", headers=ORIGIN).status_code == 303

        box.send_keys("converted", Keys.ENTER)
        WebDriverWait(driver, WAIT_S).until(
            ec.visibility_of_element_located((By.ID, "login-form")))
        assert driver.current_url.startswith(f"{base}/dashboard/login?next=")
        kept = driver.find_element(By.CSS_SELECTOR, "input[name=next]")
        assert kept.get_attribute("value") == "/dashboard/voc"
