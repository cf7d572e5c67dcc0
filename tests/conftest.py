"""Markers: the recipe end-to-end tests (tests/recipes/) carry ``recipe``, so that
``bash tests/run.sh -m "not recipe"`` runs the fast unit tests alone; ``.ci/run`` runs all."""
from pathlib import Path

import pytest

RECIPES = Path(__file__).parent / "recipes"


def pytest_configure(config):
    config.addinivalue_line("markers", "recipe: a recipe's stages run end to end (tests/recipes/)")


def pytest_collection_modifyitems(items):
    for item in items:
        if RECIPES in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.recipe)
