"""The documentation's examples run as doctests (``pytest docs``): ``tmp`` is a fresh folder."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_tmp(doctest_namespace, tmp_path):
    doctest_namespace["tmp"] = tmp_path
