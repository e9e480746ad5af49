from datetime import date

import pytest

from domain.access.models import Scope
from domain.access.rules import CredentialKind, RouteAccess, hash_key, new_key, prefix_of, sees_contact_details
from domain.errors import InvalidInput
from domain.members.models import SourceChannel
from domain.members.rules import mask_email, mask_phone, member_code, normalise_phone, parse_member_code
from domain.staff.models import StaffRole


@pytest.mark.parametrize("raw", ["13800138000", "+86 138-0013-8000", "0086 138 0013 8000", " +8613800138000 ",
                                 "(+86) 138 0013 8000"])
def test_the_ways_people_write_a_mobile_number_are_one_member(raw):
    assert normalise_phone(raw) == "+8613800138000"


def test_a_foreign_number_keeps_its_country():
    assert normalise_phone("+1 650-253-0000") == "+16502530000"


@pytest.mark.parametrize("raw", ["", "abc", "12345", "1380013800", "+86 999 0000 0000", "138001380001234"])
def test_malformed_phone_is_refused_with_its_code(raw):
    with pytest.raises(InvalidInput) as err:
        normalise_phone(raw)
    assert err.value.code == "invalid_phone"


def test_member_code_encodes_channel_campaign_date_and_serial_and_reads_back():
    code = member_code(channel=SourceChannel.WECHAT, campaign="spring-26!", joined_on=date(2026, 11, 22), serial=42)
    assert code == "WX-SPRING26-20261122-000042"
    assert parse_member_code(code) == {"channel": "wechat", "campaign": "SPRING26", "joined_on": "20261122",
                                       "serial": "000042"}


def test_member_code_without_campaign_says_so():
    code = member_code(channel=SourceChannel.STORE, campaign=None, joined_on=date(2026, 1, 2), serial=1234567)
    assert code == "ST-NA-20260102-1234567"
    assert parse_member_code("not-a-code") is None


def test_mask_phone_keeps_prefix_and_last_four():
    assert mask_phone("+8613800138000") == "+86138****8000"
    assert mask_phone(None) is None


def test_api_keys_are_random_and_only_their_hash_identifies_them():
    key1, prefix1, digest1 = new_key()
    key2, _, _ = new_key()
    assert key1 != key2
    assert prefix_of(key1) == prefix1 and hash_key(key1) == digest1
    assert prefix_of("Bearer nonsense") is None


@pytest.mark.parametrize(("held", "allowed", "ok"), [
    (Scope.APP, {Scope.APP}, True),
    (Scope.APP, {Scope.CRM}, False),
    (Scope.CRM, {Scope.APP, Scope.CRM}, True),
    (Scope.ADMIN, set(), True),
    (Scope.CRM, set(), False),
])
def test_an_admin_key_may_call_every_keyed_route_other_scopes_what_the_route_names(held, allowed, ok):
    assert RouteAccess(scopes=frozenset(allowed)).admits(CredentialKind.API_KEY, scope=held) is ok


def test_a_route_where_a_person_must_act_refuses_every_key_and_admits_only_its_roles():
    approval = RouteAccess(roles=frozenset({StaffRole.MARKETER}), keys=False)
    assert not approval.admits(CredentialKind.API_KEY, scope=Scope.ADMIN)
    assert approval.admits(CredentialKind.STAFF, role=StaffRole.MARKETER)
    assert not approval.admits(CredentialKind.STAFF, role=StaffRole.AGENT)
    assert not approval.admits(CredentialKind.MEMBER)


@pytest.mark.parametrize(("kind", "scope", "pii", "sees"), [
    (CredentialKind.STAFF, None, False, False), (CredentialKind.STAFF, None, True, True),
    (CredentialKind.API_KEY, Scope.CRM, False, False), (CredentialKind.API_KEY, Scope.CRM, True, True),
    (CredentialKind.API_KEY, Scope.ADMIN, False, True), (CredentialKind.MEMBER, None, False, True),
    (CredentialKind.API_KEY, Scope.POS, False, False),
])
def test_who_sees_full_phone_numbers_and_emails(kind, scope, pii, sees):
    assert sees_contact_details(kind, scope=scope, pii_access=pii) is sees


def test_an_email_is_masked_to_its_first_letter_and_domain():
    assert mask_email("wang.fang@example.com") == "w***@example.com"
    assert mask_email(None) is None and mask_email("broken") == "***"
