"""The pure core: contracts, policy and a given ``now`` in; desired state and plans out.

Nothing in this package does I/O or reads the clock (enforced by import-linter and a
test); callers pass time in. That is what makes ``syncd plan --at`` exact and the core
testable with plain tables.
"""
