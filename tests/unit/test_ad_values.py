"""AD value formats and error translation of the ``ad`` target, as plain tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ldap3.core import exceptions as lx

from syncd.errors import PermanentError, TemporaryError
from syncd.targets.ad import values as v
from syncd.targets.ad.connection import translate_ad


@pytest.mark.parametrize(
    ("moment", "filetime"),
    [
        (datetime(1601, 1, 1, tzinfo=UTC), 0),
        (datetime(1970, 1, 1, tzinfo=UTC), 116444736000000000),
        (datetime(2030, 6, 30, 22, 0, tzinfo=UTC), 135535608000000000),
    ],
)
def test_filetime_counts_100ns_since_1601(moment: datetime, filetime: int) -> None:
    assert v.to_filetime(moment) == filetime
    if filetime:
        assert v.from_filetime(filetime) == moment


@pytest.mark.parametrize("never", [0, v.NEVER, -1])
def test_filetime_zero_and_max_mean_never(never: int) -> None:
    assert v.from_filetime(never) is None


@pytest.mark.parametrize(
    ("uac", "disabled", "enabled"),
    [(512, 514, 512), (514, 514, 512), (0x10200, 0x10202, 0x10200), (546, 546, 544)],
)
def test_only_the_accountdisable_bit_moves(uac: int, disabled: int, enabled: int) -> None:
    assert v.disabled(uac) == disabled
    assert v.enabled(uac) == enabled


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ana.lopez", ""),
        ("a" * 20, ""),
        ("a" * 21, "longer than AD's 20 characters"),
        ("ana@lopez", "forbids in sAMAccountName: '@'"),
        ('a"b/c\\d', "'\"' '/' '\\\\'"),
        ("ana.", "ends with a period"),
        ("", "empty"),
    ],
)
def test_sam_account_name_rules(name: str, reason: str) -> None:
    problem = v.sam_problem(name)
    assert (reason in problem) if reason else problem == ""


def test_random_passwords_are_long_mixed_and_never_repeat() -> None:
    first, second = v.random_password(), v.random_password()
    assert first != second
    assert len(first) >= 40
    assert any(c.isupper() for c in first)
    assert any(c.islower() for c in first)
    assert any(c.isdigit() for c in first)
    assert any(not c.isalnum() for c in first)
    assert v.unicode_pwd("pw") == '"pw"'.encode("utf-16-le")


def _refusal(code: int, description: str, message: str) -> lx.LDAPOperationResult:
    return lx.LDAPOperationResult(result=code, description=description, message=message)


@pytest.mark.parametrize(
    ("code", "description", "message", "kind", "says"),
    [
        (19, "constraintViolation", "0000052D: Constraint violation - password too short",
         PermanentError, "password policy"),
        (68, "entryAlreadyExists", "00002071: samldb: samAccountName 'x' already in use!",
         PermanentError, "another username"),
        (50, "insufficientAccessRights", "00000005: SecErr: DSID-03152E29, problem 4003",
         PermanentError, "delegate control of the managed OU"),
        (10, "referral", "0000202B: RefErr: DSID-0310082F, data 0, 1 access points",
         PermanentError, "point urls at a DC of the domain"),
        (8, "strongerAuthRequired", "BindSimple: Transport encryption required.",
         PermanentError, "use ldaps://"),
        (49, "invalidCredentials", "80090308: LdapErr: AcceptSecurityContext error, data 533",
         PermanentError, "service account is disabled"),
        (51, "busy", "00002024: busy", TemporaryError, "busy"),
        (32, "noSuchObject", "no such object", PermanentError, "does not exist"),
    ],
)  # fmt: skip
def test_ad_refusals_say_what_to_change(
    code: int, description: str, message: str, kind: type[Exception], says: str
) -> None:
    error = translate_ad(_refusal(code, description, message), "corp-ad")
    assert isinstance(error, kind)
    assert says in str(error)
    assert str(error).startswith("corp-ad: ")
    assert error.code == code  # the answer is kept as data, not only as text


@pytest.mark.parametrize(
    ("code", "message", "subcode"),
    [
        (68, "00000562: UpdErr: DSID-031A1254, problem 6005 (ENTRY_EXISTS)", "00000562"),
        (53, "00000561: SvcErr: DSID-031A1254, problem 5003 (WILL_NOT_PERFORM)", "00000561"),
        (19, "0000052d: Constraint violation", "0000052D"),
        (32, "no such object", ""),
    ],
)
def test_ad_windows_codes_are_kept_as_subcode(code: int, message: str, subcode: str) -> None:
    error = translate_ad(_refusal(code, "refused", message), "corp-ad")
    assert (error.code, error.subcode) == (code, subcode)
