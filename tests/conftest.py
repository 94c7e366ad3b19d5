"""Registers the fixture plugins for the whole suite (pytest reads ``pytest_plugins``
only in this top-level conftest)."""

import pytest

# The labs assert on what their servers answer; rewrite those asserts like a test's.
pytest.register_assert_rewrite("tests.labs")

pytest_plugins = [
    "tests.plugins.ldap",
    "tests.plugins.scim",
    "tests.plugins.ad",
    "tests.plugins.dirsrv",
    "tests.plugins.scimmy",
    "tests.plugins.world",
    "tests.plugins.etcd",
]
