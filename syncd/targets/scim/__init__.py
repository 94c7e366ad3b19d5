"""The ``scim`` target kind: a SCIM 2.0 service provider (RFC 7643/7644).

``ScimDirectory`` is what ``syncd.engine`` opens for a ``type: scim`` target."""

from syncd.targets.scim.target import ScimDirectory

__all__ = ["ScimDirectory"]
