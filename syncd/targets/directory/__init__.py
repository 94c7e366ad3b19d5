"""What the ``ldap`` and ``ad`` targets share: the connection (``connection``), DN and
value helpers (``values``) and the operations built on them (``operations``).

Imported by ``targets.ldap`` and ``targets.ad`` only; it knows neither of them."""
