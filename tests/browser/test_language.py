"""The language switch: English, Dutch and French, from the first screen on, remembered by the browser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.support.server import RunningServer

from .helpers import sign_in

pytestmark = pytest.mark.browser

# (language code, option label, sign-in title, sign-in button, devices title, account link, connection "live")
LANGUAGES = [
    ("nl", "Nederlands", "Aanmelden", "Aanmelden", "Apparaten", "Mijn account", "Live"),
    ("fr", "Français", "Connexion", "Se connecter", "Appareils", "Mon compte", "En direct"),
    ("en", "English", "Sign in", "Sign in", "Devices", "My account", "Live"),
]


async def test_language_switch_changes_the_visible_text(page: Page, server: RunningServer) -> None:
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    # on the sign-in screen, before anyone signs in
    for code, option, title, button, _, _, _ in LANGUAGES:
        await page.locator("select.language-select").select_option(label=option)
        await expect(page.locator("html")).to_have_attribute("lang", code)
        await expect(page.get_by_role("heading", level=1)).to_have_text(title)
        await expect(page.locator("form button[type=submit]")).to_have_text(button)

    # the choice survives a reload (localStorage)
    await page.locator("select.language-select").select_option(label="Français")
    await page.reload()
    await expect(page.get_by_role("heading", name="Connexion")).to_be_visible()
    await expect(page.get_by_label("Nom d’utilisateur")).to_be_visible()

    # a failed sign-in explains itself in the chosen language
    await page.get_by_label("Nom d’utilisateur").fill(server.admin_username)
    await page.get_by_label("Mot de passe").fill("wrong password")
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("alert")).to_have_text("Nom d’utilisateur ou mot de passe incorrect.")

    await page.get_by_label("Mot de passe").fill(server.admin_password)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page.get_by_role("heading", name="Appareils", exact=True)).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "fr")

    # signed in: the header picker switches every visible text in place, without reloading
    picker = page.locator("header select.language-select")
    for code, option, _, _, devices, account, live in LANGUAGES:
        await picker.select_option(label=option)
        await expect(page.locator("html")).to_have_attribute("lang", code)
        await expect(page.get_by_role("heading", level=1)).to_have_text(devices)
        await expect(page.get_by_role("navigation").get_by_role("link", name=account)).to_be_visible()
        await expect(page.locator(".connection")).to_have_text(live)
        await expect(page).to_have_title(
            {"en": "Steun console", "nl": "Steun-console", "fr": "Console Steun"}[code]
        )


async def test_the_account_page_follows_a_switch_while_it_is_open(page: Page, server: RunningServer) -> None:
    await sign_in(page, server.admin_username, server.admin_password)
    await page.get_by_role("link", name="My account").click()
    await expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    await page.get_by_label("Current password").fill("typed before the switch")
    await page.locator("main select.language-select").select_option("nl")
    await expect(page.get_by_role("heading", name="Tweestapsverificatie")).to_be_visible()
    await expect(page.get_by_role("button", name="Tweestapsverificatie instellen")).to_be_visible()
    # what the person typed is kept, and both pickers agree
    await expect(page.get_by_label("Huidig wachtwoord")).to_have_value("typed before the switch")
    await expect(page.locator("header select.language-select")).to_have_value("nl")
    await page.locator("header select.language-select").select_option("fr")
    await expect(page.get_by_role("heading", name="Validation en deux étapes")).to_be_visible()
    await expect(page.locator("main select.language-select")).to_have_value("fr")
