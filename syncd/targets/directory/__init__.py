"""What the ``ldap`` and ``ad`` targets share: the connection (``connection``), DN and
value helpers (``values``), the operations built on them (``operations``) and
the batched reads that verify writes (``readback``).

Imported by ``targets.ldap`` and ``targets.ad`` only; it knows neither of them."""
