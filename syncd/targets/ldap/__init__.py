"""The ``ldap`` target kind: OpenLDAP, 389-ds or any LDAPv3 directory.

``LdapDirectory`` is what ``syncd.engine`` opens for a ``type: ldap`` target."""

from syncd.targets.ldap.settings import LOCKED_FOREVER
from syncd.targets.ldap.target import LdapDirectory

__all__ = ["LOCKED_FOREVER", "LdapDirectory"]
