from datetime import UTC, datetime, timedelta

from domain.wechat.rules import dedupe_key, in_service_window, is_stale, signature, signature_valid

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_signature_is_sha1_of_the_sorted_parts():
    # sorted → "123abcxyz"; its SHA-1, computed independently with hashlib from the joined string.
    assert signature("abc", "123", "xyz") == "94ffbd20c84766e871799062cb1bc3e3f40c5e13"
    assert signature("token", "1", "n") == signature("n", "token", "1")


def test_a_forged_signature_of_any_characters_is_refused_without_error():
    ts = "1700000000"
    good = signature("tok", ts, "n")
    assert signature_valid(token="tok", timestamp=ts, nonce="n", presented=good)
    for forged in ("", "0" * 40, "\u0080", "签名"):
        assert not signature_valid(token="tok", timestamp=ts, nonce="n", presented=forged)


def test_stale_or_unreadable_timestamps_are_refused():
    assert not is_stale(timestamp=str(int(NOW.timestamp()) - 299), now=NOW, max_skew_seconds=300)
    assert is_stale(timestamp=str(int(NOW.timestamp()) - 301), now=NOW, max_skew_seconds=300)
    assert is_stale(timestamp="soon", now=NOW, max_skew_seconds=300)


def test_messages_dedupe_on_msgid_and_events_on_sender_and_time():
    assert dedupe_key(msg_id=123, sender="o", create_time=1, event=None) == "msg:123"
    assert dedupe_key(msg_id=None, sender="o", create_time=1, event="subscribe") == "evt:o:1:subscribe"


def test_the_customer_service_window_is_48_hours_after_the_last_message():
    assert in_service_window(last_interaction_at=NOW - timedelta(hours=47), now=NOW)
    assert not in_service_window(last_interaction_at=NOW - timedelta(hours=48), now=NOW)
    assert not in_service_window(last_interaction_at=None, now=NOW)
