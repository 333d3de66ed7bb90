from __future__ import annotations

import pytest

from media_server.calls.metadata import Consent, MetadataError
from media_server.ingest.siprec.metadata import parse_recording_metadata
from media_server.ingest.siprec.participants import RoleRule, aor_parts, assign
from tests.siprec_samples import metadata_xml

LABELS = ["1", "2"]


def test_the_rep_is_the_participant_of_the_teams_domain() -> None:
    meta = parse_recording_metadata(
        metadata_xml(rep=("Bob", "sip:+1555@carrier.example"), customer=("Al", "sip:al@acme.example"))
    )
    result = assign(meta, LABELS, {}, RoleRule(("acme.example",)), {})
    assert result.metadata.rep.name == "Al" and result.metadata.customer.name == "Bob"
    assert result.metadata.customer.phone == "+1555"
    assert result.speakers == {"1": "customer", "2": "rep"}


def test_else_the_rep_label_else_the_first_participant() -> None:
    meta = parse_recording_metadata(metadata_xml())
    assert assign(meta, LABELS, {}, RoleRule(rep_label="2"), {}).speakers == {"1": "customer", "2": "rep"}
    assert assign(meta, LABELS, {}, RoleRule(), {}).speakers == {"1": "rep", "2": "customer"}


def test_without_metadata_the_first_stream_is_the_reps() -> None:
    assert assign(None, LABELS, {}, RoleRule(), {}).speakers == {"1": "rep", "2": "customer"}
    assert assign(None, LABELS, {}, RoleRule(rep_label="2"), {}).speakers == {"1": "customer", "2": "rep"}


def test_a_stream_nobody_or_everybody_sends_on_is_mixed() -> None:
    meta = parse_recording_metadata(metadata_xml())
    assert assign(meta, ["1", "2", "3"], {}, RoleRule(), {}).speakers["3"] == "mixed"


def test_consent_metadata_beats_headers_beat_the_default() -> None:
    rule = RoleRule(default_consent=Consent.GRANTED)
    plain = assign(parse_recording_metadata(metadata_xml()), LABELS, {}, rule, {})
    assert (plain.metadata.rep.consent, plain.metadata.customer.consent) == (Consent.GRANTED, Consent.GRANTED)
    headers = {"x-customer-consent": "denied"}
    by_header = assign(parse_recording_metadata(metadata_xml()), LABELS, headers, rule, {})
    assert by_header.metadata.customer.consent is Consent.DENIED
    by_meta = assign(parse_recording_metadata(metadata_xml(consent=("granted", "denied"))), LABELS, {}, RoleRule(), {})
    assert (by_meta.metadata.rep.consent, by_meta.metadata.customer.consent) == (Consent.GRANTED, Consent.DENIED)
    with pytest.raises(MetadataError):
        assign(None, LABELS, {"x-recording-consent": "maybe"}, rule, {})


def test_aor_parts() -> None:
    assert aor_parts("sip:alice@Acme.Example:5060;transport=tcp") == ("alice", "acme.example")
    assert aor_parts("<tel:+15551234567>") == ("+15551234567", "")
    assert aor_parts("sip:acme.example") == ("", "acme.example")
