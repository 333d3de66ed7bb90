"""Consent rules: who may be transcribed under all-party and one-party policies."""

from __future__ import annotations

import pytest

from media_server.calls.consent import may_transcribe, may_transcribe_all
from media_server.calls.metadata import Consent, ParticipantInfo, Role, parse_metadata
from media_server.config import ConsentPolicy

ALL = ConsentPolicy.ALL_PARTY
ONE = ConsentPolicy.ONE_PARTY


@pytest.mark.parametrize(
    ("consent", "all_party", "one_party"),
    [
        (Consent.GRANTED, True, True),
        (Consent.UNKNOWN, False, True),  # all-party: silence is not consent
        (Consent.DENIED, False, False),  # an explicit no is always respected
    ],
)
def test_may_transcribe(consent: Consent, all_party: bool, one_party: bool) -> None:
    assert may_transcribe(consent, ALL) is all_party
    assert may_transcribe(consent, ONE) is one_party


def _pair(rep: Consent, customer: Consent) -> list[ParticipantInfo]:
    return [ParticipantInfo(Role.REP, consent=rep), ParticipantInfo(Role.CUSTOMER, consent=customer)]


@pytest.mark.parametrize(
    ("rep", "customer", "all_party", "one_party"),
    [
        (Consent.GRANTED, Consent.GRANTED, True, True),
        (Consent.GRANTED, Consent.UNKNOWN, False, True),
        (Consent.UNKNOWN, Consent.UNKNOWN, False, True),
        (Consent.GRANTED, Consent.DENIED, False, False),
        (Consent.DENIED, Consent.GRANTED, False, False),
        (Consent.DENIED, Consent.UNKNOWN, False, False),
    ],
)
def test_mixed_channel_needs_every_voice(rep: Consent, customer: Consent, all_party: bool, one_party: bool) -> None:
    voices = _pair(rep, customer)
    assert may_transcribe_all(voices, ALL) is all_party
    assert may_transcribe_all(voices, ONE) is one_party


def test_mixed_channel_accepts_any_iterable() -> None:
    voices = _pair(Consent.GRANTED, Consent.GRANTED)
    assert may_transcribe_all(iter(voices), ALL) is True
    assert may_transcribe_all((p for p in voices), ONE) is True


def test_channel_with_nobody_on_it_is_allowed() -> None:
    assert may_transcribe_all([], ALL) is True


def test_metadata_without_consent_under_each_policy() -> None:
    """A call whose platform sends no consent at all: nothing under all-party, everything under one-party."""
    meta = parse_metadata({"team": "acme", "repName": "Ann"})
    assert not any(may_transcribe(p.consent, ALL) for p in meta.participants)
    assert all(may_transcribe(p.consent, ONE) for p in meta.participants)


def test_customer_denies_rep_is_still_transcribed_on_own_channel() -> None:
    meta = parse_metadata({"repConsent": "yes", "customerConsent": "no"})
    for policy in (ALL, ONE):
        assert may_transcribe(meta.rep.consent, policy) is True
        assert may_transcribe(meta.customer.consent, policy) is False
        assert may_transcribe_all(meta.participants, policy) is False


def test_policy_values() -> None:
    assert ConsentPolicy("all_party") is ALL
    assert ConsentPolicy("one_party") is ONE
