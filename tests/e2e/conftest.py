"""Fixtures for the end-to-end tests: the browser ones from tests/browser, a private Xvfb per test."""

from __future__ import annotations

from tests.browser.conftest import browser, context, page, page_errors  # noqa: F401 - fixtures
