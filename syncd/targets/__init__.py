"""Target edges: each observes its managed scope and applies actions, translating its
library's errors into ``syncd.errors`` at the edge.

``base`` is the protocol; ``memory`` an in-memory target for unit tests; ``directory``
what the ``ldap`` and ``ad`` targets share; ``ldap``, ``ad`` and ``scim`` one package
per kind of target, which never import each other (``.importlinter``)."""
