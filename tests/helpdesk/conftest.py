# The browser tests' fixtures: headless Chromium on the live server's admin.
from tests.support.browser import artifacts, open_admin  # noqa: F401
