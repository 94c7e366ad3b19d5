"""Active/passive ``syncd run`` on several hosts: one leader, elected with a lease on etcd.

- ``etcd``: a small client of etcd's v3 JSON gateway over httpx2.
- ``election``: the campaign, the lease's renewal and the write gate (``may_write``).
- ``role``: the daemon's side: audit records, ``syncd_leader``, ``/healthz``, followers.
- ``status``: what ``syncd ha status`` and ``syncd ha step-down`` ask etcd.

Without an ``ha:`` section none of it runs. ``docs/ha.md`` describes operations.
"""
