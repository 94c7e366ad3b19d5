"""Notices to sponsors, contractors and ops (SPEC §1): warnings before access ends,
grants, revocations, ops notices and the sponsor digest, by mail and webhook.

The modules: ``due`` (pure: which warnings and digests are due, and when the next one
is), ``compose`` (pure: the notices, their recipients and values), ``message`` (the
notice and its templates), ``channels`` (SMTP and webhook), ``store`` (what was sent,
in the state directory) and ``service`` (``Notices``: planning and delivery, for the
daemon and the CLI).
"""
