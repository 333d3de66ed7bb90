from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.ingest.siprec.metadata import RecordingMetadataError, parse_recording_metadata
from tests.siprec_samples import metadata_xml


def test_participants_streams_and_their_association() -> None:
    meta = parse_recording_metadata(metadata_xml())
    assert meta.datamode == "complete"
    assert meta.sip_session_ids[0].startswith("ab30317f")
    names = {p.name: p.aor for p in meta.participants.values()}
    assert names == {"Alice Rep": "sip:alice@acme.example", "Bob Buyer": "sip:+15551234567@carrier.example"}
    assert [p.name for p in meta.participants_on("1")] == ["Alice Rep"]
    assert [p.name for p in meta.participants_on("2")] == ["Bob Buyer"]
    assert meta.participants_on("3") == []


def test_consent_from_an_extension_element() -> None:
    meta = parse_recording_metadata(metadata_xml(consent=("granted", "denied")))
    assert [p.consent for p in meta.participants.values()] == ["granted", "denied"]


def test_the_older_draft_layout_with_send_inside_participant() -> None:
    xml = (
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>'
        '<participant id="p1"><nameID aor="sip:a@acme.example"/><send>s1</send></participant>'
        '<stream id="s1"><label>7</label></stream></recording>'
    )
    assert [p.id for p in parse_recording_metadata(xml).participants_on("7")] == ["p1"]


def test_a_partial_update_renames_and_keeps_the_rest() -> None:
    meta = parse_recording_metadata(metadata_xml())
    update = parse_recording_metadata(
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>'
        '<participant participant_id="zSfPoSvdSDCmU3A3TRDxAw=="><nameID aor="sip:+15551234567@carrier.example">'
        "<name>Robert Buyer</name></nameID></participant></recording>"
    )
    merged = meta.merged(update)
    assert [p.name for p in merged.participants_on("2")] == ["Robert Buyer"]
    assert [p.name for p in merged.participants_on("1")] == ["Alice Rep"]
    assert (
        meta.merged(parse_recording_metadata(metadata_xml(customer=("Carol", "sip:c@x")))).participants_on("2")[0].name
        == "Carol"
    )


@pytest.mark.parametrize(
    "xml",
    [
        "<recording",  # not well-formed
        "<other xmlns='urn:ietf:params:xml:ns:recording:1'/>",
        "<recording xmlns='urn:example:wrong'/>",
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>sometimes</datamode></recording>",
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><stream stream_id='s'/></recording>",  # no label
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant/></recording>",  # no id
        "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant participant_id='p'><send>nope</send>"
        "</participant></recording>",
        '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><recording>&b;</recording>',  # entity expansion
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><recording>&x;</recording>',  # external entity
    ],
)
def test_bad_metadata_is_refused_with_a_reason(xml: str) -> None:
    with pytest.raises(RecordingMetadataError):
        parse_recording_metadata(xml)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_fuzzed_metadata_raises_only_its_own_error(data: bytes | str) -> None:
    try:
        parse_recording_metadata(data)
    except RecordingMetadataError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 20), st.text(max_size=10))
def test_mutated_metadata_raises_only_its_own_error(position: int, length: int, junk: str) -> None:
    xml = metadata_xml()
    try:
        parse_recording_metadata(xml[:position] + junk + xml[position + length :])
    except RecordingMetadataError:
        pass


def test_an_unknown_declared_encoding_is_a_metadata_error() -> None:
    """Found by the fuzzer: expat looks the declared encoding up and raises LookupError for one it does not know."""
    xml = metadata_xml()
    broken = xml.replace('encoding="UTF-8"', 'encoding="TF-8"')
    assert broken != xml
    with pytest.raises(RecordingMetadataError, match="unknown encoding"):
        parse_recording_metadata(broken)
