"""syncd: contractor accounts that exist exactly as long as their contracts.

The package is a pipeline (see README "Concepts"): ``sources`` read raw records,
``core`` turns them into desired state and plans (pure, no I/O, no clock), ``targets``
observe and change directories, ``apply`` runs a plan and ``audit`` records every change.
"""

__version__ = "0.1.0"
