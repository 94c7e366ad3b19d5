"""The ``ad`` target kind: user objects in an Active Directory OU (Windows domain
controllers or a Samba AD DC).

``AdDirectory`` is what ``syncd.engine`` opens for a ``type: ad`` target."""

from syncd.targets.ad.target import AdDirectory

__all__ = ["AdDirectory"]
