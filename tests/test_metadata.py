"""Call metadata normalisation: keys in either case, three shapes of consent, clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from media_server.calls.metadata import (
    CallMetadata,
    Consent,
    MetadataError,
    Role,
    parse_consent,
    parse_metadata,
)


def test_empty_or_missing_metadata_gives_defaults() -> None:
    empty: list[dict[str, Any] | None] = [None, {}]
    for raw in empty:
        meta = parse_metadata(raw)
        assert meta == CallMetadata()
        assert meta.team is None and meta.token is None
        assert meta.rep.role is Role.REP and meta.customer.role is Role.CUSTOMER
        assert meta.rep.consent is Consent.UNKNOWN and meta.customer.consent is Consent.UNKNOWN
        assert meta.extra == {}


def test_camel_case_keys() -> None:
    meta = parse_metadata(
        {
            "team": "acme",
            "repId": "u-7",
            "repName": "Ann Rep",
            "repEmail": "ann@acme.test",
            "customerPhone": "+15551230000",
            "customerEmail": "zoe@example.test",
            "customerName": "Zoe",
            "customerId": "crm-9",
            "repConsent": "granted",
            "customerConsent": "denied",
        }
    )
    assert meta.team == "acme"
    assert (meta.rep.id, meta.rep.name, meta.rep.email) == ("u-7", "Ann Rep", "ann@acme.test")
    assert (meta.customer.id, meta.customer.name, meta.customer.phone, meta.customer.email) == (
        "crm-9",
        "Zoe",
        "+15551230000",
        "zoe@example.test",
    )
    assert meta.rep.consent is Consent.GRANTED
    assert meta.customer.consent is Consent.DENIED
    assert meta.extra == {}


def test_snake_case_keys_mean_the_same() -> None:
    camel = parse_metadata({"repName": "Ann", "customerPhone": "+1555", "repConsent": "granted", "team": "t"})
    snake = parse_metadata({"rep_name": "Ann", "customer_phone": "+1555", "rep_consent": "granted", "team": "t"})
    assert camel == snake
    assert snake.rep.name == "Ann" and snake.customer.phone == "+1555"
    assert snake.rep.consent is Consent.GRANTED


def test_numbers_are_accepted_as_strings() -> None:
    meta = parse_metadata({"repId": 42, "customerPhone": 15551230000})
    assert meta.rep.id == "42"
    assert meta.customer.phone == "15551230000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("granted", Consent.GRANTED),
        ("denied", Consent.DENIED),
        ("unknown", Consent.UNKNOWN),
        ("yes", Consent.GRANTED),
        ("no", Consent.DENIED),
        ("true", Consent.GRANTED),
        ("false", Consent.DENIED),
        ("  Granted ", Consent.GRANTED),
        ("YES", Consent.GRANTED),
        (True, Consent.GRANTED),
        (False, Consent.DENIED),
        ("", Consent.UNKNOWN),
        (None, Consent.UNKNOWN),
    ],
)
def test_consent_values_and_aliases(value: Any, expected: Consent) -> None:
    assert parse_consent(value, "x") is expected
    assert parse_metadata({"customerConsent": value}).customer.consent is expected


def test_consent_object() -> None:
    meta = parse_metadata({"consent": {"rep": "yes", "customer": "no"}})
    assert meta.rep.consent is Consent.GRANTED
    assert meta.customer.consent is Consent.DENIED


def test_consent_object_as_a_json_string() -> None:
    # Twilio customParameters are always strings.
    meta = parse_metadata({"consent": json.dumps({"rep": "granted", "customer": "granted"})})
    assert meta.rep.consent is Consent.GRANTED
    assert meta.customer.consent is Consent.GRANTED


def test_consent_object_role_aliases() -> None:
    meta = parse_metadata({"consent": {"agent": "granted", "caller": "denied"}})
    assert meta.rep.consent is Consent.GRANTED
    assert meta.customer.consent is Consent.DENIED


def test_participants_list() -> None:
    meta = parse_metadata(
        {
            "participants": [
                {"role": "rep", "id": "u-1", "name": "Ann", "email": "ann@acme.test", "consent": "granted"},
                {"role": "customer", "name": "Zoe", "phone": "+1555", "consent": "no"},
            ]
        }
    )
    assert (meta.rep.id, meta.rep.name, meta.rep.email, meta.rep.consent) == (
        "u-1",
        "Ann",
        "ann@acme.test",
        Consent.GRANTED,
    )
    assert (meta.customer.name, meta.customer.phone, meta.customer.consent) == ("Zoe", "+1555", Consent.DENIED)
    assert meta.participants == (meta.rep, meta.customer)
    assert meta.participant(Role.CUSTOMER) is meta.customer


def test_participants_as_a_json_string() -> None:
    raw = json.dumps([{"role": "customer", "consent": "granted"}, {"role": "agent", "name": "Ann"}])
    meta = parse_metadata({"participants": raw})
    assert meta.customer.consent is Consent.GRANTED
    assert meta.rep.name == "Ann"
    assert meta.rep.consent is Consent.UNKNOWN


def test_participant_without_consent_keeps_the_flat_value() -> None:
    meta = parse_metadata({"repConsent": "granted", "participants": [{"role": "rep", "name": "Ann"}]})
    assert meta.rep.consent is Consent.GRANTED
    assert meta.rep.name == "Ann"


def test_token_is_extracted_and_not_kept_as_metadata() -> None:
    meta = parse_metadata({"token": "msk_secret", "team": "acme", "campaign": "spring"})
    assert meta.token == "msk_secret"
    assert "token" not in meta.extra
    assert "msk_secret" not in meta.extra.values()
    assert meta.extra == {"campaign": "spring"}


def test_extra_keys_are_kept_as_strings() -> None:
    meta = parse_metadata({"campaign": "spring", "priority": 3, "score": 0.5, "vip": True, "muted": False})
    assert meta.extra == {"campaign": "spring", "priority": "3", "score": "0.5", "vip": "true", "muted": "false"}
    assert all(isinstance(v, str) for v in meta.extra.values())


def test_extra_keys_keep_the_name_the_platform_sent() -> None:
    assert parse_metadata({"leadSource": "web", "crm_id": "7"}).extra == {"leadSource": "web", "crm_id": "7"}


def test_extra_values_that_are_not_scalars_are_dropped() -> None:
    meta = parse_metadata({"tags": ["a", "b"], "crm": {"id": 1}, "nothing": None, "kept": "yes"})
    assert meta.extra == {"kept": "yes"}


def test_extra_is_bounded() -> None:
    meta = parse_metadata({f"k{i}": "v" * 2000 for i in range(200)})
    assert 0 < len(meta.extra) <= 64
    assert all(len(v) <= 512 for v in meta.extra.values())


def test_long_participant_fields_are_truncated() -> None:
    meta = parse_metadata({"repName": "x" * 10_000})
    assert meta.rep.name == "x" * 256


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"repConsent": "maybe"}, "repConsent"),
        ({"customer_consent": "perhaps"}, "customerConsent"),
        ({"consent": {"rep": "sure"}}, "consent.rep"),
        ({"participants": [{"role": "customer", "consent": "later"}]}, "participants[0].consent"),
    ],
)
def test_bad_consent_value(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(MetadataError) as info:
        parse_metadata(raw)
    message = str(info.value)
    assert message.startswith(where + ":")
    assert "granted, denied or unknown" in message


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"consent": {"boss": "granted"}}, "consent"),
        ({"participants": [{"role": "boss"}]}, "participants[0].role"),
        ({"participants": [{"role": "rep"}, {"name": "no role"}]}, "participants[1].role"),
    ],
)
def test_bad_role(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(MetadataError) as info:
        parse_metadata(raw)
    message = str(info.value)
    assert message.startswith(where + ":")
    assert "role must be rep or customer" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"consent": "granted"}, "consent: expected an object"),
        ({"consent": ["rep"]}, "consent: expected an object"),
        ({"consent": "{not json"}, "consent: invalid JSON"),
        ({"participants": {"role": "rep"}}, "participants: expected a list"),
        ({"participants": "[oops"}, "participants: invalid JSON"),
        ({"participants": ["rep"]}, "participants[0]: expected an object"),
        ({"participants": [{"role": "rep", "name": {"first": "Ann"}}]}, "participants[0].name: expected a string"),
        ({"repName": ["Ann"]}, "repName: expected a string"),
        ({"team": {"id": 1}}, "team: expected a string"),
    ],
)
def test_structural_errors_say_which_field(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MetadataError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_metadata(raw)


def test_metadata_must_be_an_object() -> None:
    with pytest.raises(MetadataError, match="JSON object"):
        parse_metadata(["team", "acme"])  # type: ignore[arg-type]


def test_metadata_error_is_a_value_error() -> None:
    assert issubclass(MetadataError, ValueError)


def test_recognition_options_from_twilio_strings() -> None:
    meta = parse_metadata(
        {"endpointing": "300", "utteranceEndMs": "1500", "interimResults": "false", "keyterms": "Acme, Zorvex"}
    )
    r = meta.recognition
    assert (r.endpointing_ms, r.utterance_end_ms, r.interim_results) == (300, 1500, False)
    assert r.keyterms == ("Acme", "Zorvex")
    assert "keyterms" not in meta.extra and "endpointing" not in meta.extra


def test_recognition_options_from_json_values() -> None:
    meta = parse_metadata({"interim_results": True, "keyterms": ["Acme Cloud", "Acme Cloud"], "keywords": "Zorvex:2"})
    assert meta.recognition.interim_results is True
    assert meta.recognition.keyterms == ("Acme Cloud", "Zorvex"), "deduplicated; Deepgram intensifiers dropped"
    assert meta.recognition.endpointing_ms is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"endpointing": "soon"}, "endpointing"),
        ({"endpointing": 0}, "between"),
        ({"utteranceEndMs": 99999}, "between"),
        ({"interimResults": "maybe"}, "interimResults"),
        ({"keyterms": [1, 2]}, "keyterms"),
    ],
)
def test_bad_recognition_options_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"repConsent": "unknown"},
        {"consent": {"rep": "unknown"}},
        {"participants": [{"role": "rep", "consent": "unknown"}]},
    ],
)
def test_a_consent_said_is_marked_given_even_unknown(raw: dict[str, Any]) -> None:
    """A protocol's consent default (compat.consent, audiosocket.consent) never replaces what the stream said."""
    meta = parse_metadata(raw)
    assert meta.rep.consent is Consent.UNKNOWN and meta.rep.consent_given
    assert not meta.customer.consent_given


def test_no_consent_said_is_not_given() -> None:
    meta = parse_metadata({"repName": "Dana", "customerConsent": ""})
    assert not meta.rep.consent_given and not meta.customer.consent_given
