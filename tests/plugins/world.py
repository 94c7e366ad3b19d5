"""The fixture of the shared lifecycle scenarios: ``world``, every scenario once per
target kind, each on the lab of that kind's plugin."""

from __future__ import annotations

import pytest

from tests.labs.common import World
from tests.labs.ldap import LdapWorld


@pytest.fixture(name="world", params=["ldap", "dirsrv", "scim", "scimmy", "ad"])
def world_fixture(request: pytest.FixtureRequest) -> World:
    if request.param == "ldap":
        return LdapWorld(request.getfixturevalue("lab"))
    lab: World = request.getfixturevalue(f"{request.param}_lab")  # a ScimLab, DirsrvLab, AdLab
    return lab
