from datetime import date

import pytest

from domain.access.models import Scope
from domain.access.rules import hash_key, new_key, prefix_of, scope_allows
from domain.errors import InvalidInput
from domain.members.models import SourceChannel
from domain.members.rules import mask_phone, member_code, normalise_phone, parse_member_code


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
def test_admin_may_do_everything_other_scopes_what_the_route_names(held, allowed, ok):
    assert scope_allows(held, frozenset(allowed)) is ok
