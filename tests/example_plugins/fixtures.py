"""Fixtures for tests that run the example plugins; import them into a test module by name."""
from __future__ import annotations

import pytest

from tests.example_plugins import WITH_EXAMPLES, migrate, ratings


@pytest.fixture
def examples_app(make_app, db_url):
    """The demo database plus the example plugins, with ratings' own table migrated in."""
    migrate(db_url, WITH_EXAMPLES)
    ratings.CALLS.clear()
    return make_app(plugins=WITH_EXAMPLES)
