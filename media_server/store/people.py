"""A person as an erasure or an access request names them: a phone number (compared in E.164 form), an e-mail
address (case-insensitive), a customer id, or a rep (by id, e-mail or name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import phonenumbers

Kind = Literal["phone", "email", "customer_id", "rep"]
KINDS: tuple[Kind, ...] = ("phone", "email", "customer_id", "rep")


class NotAPerson(ValueError):
    pass


def e164(raw: str, region: str = "US") -> str | None:
    """The number in E.164 form (``+15551230000``), or None when it is not a possible phone number."""
    try:
        number = phonenumbers.parse(raw, None if raw.strip().startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Person:
    kind: Kind
    value: str  # normalised: E.164 for a phone, lower case for an e-mail
    region: str = "US"  # where a stored number without a country code is read as dialled

    @classmethod
    def of(cls, kind: str, raw: str, region: str = "US") -> Person:
        raw = raw.strip()
        if kind not in KINDS:
            raise NotAPerson(f"name the person by one of {', '.join(KINDS)}")
        if not raw or len(raw) > 256:
            raise NotAPerson(f"{kind} must be 1-256 characters")
        if kind == "phone":
            number = e164(raw, region)
            if number is None:
                raise NotAPerson(f"{raw!r} is not a phone number")
            return cls("phone", number, region)
        if kind == "email":
            if "@" not in raw:
                raise NotAPerson(f"{raw!r} is not an e-mail address")
            return cls("email", raw.lower(), region)
        return cls(kind, raw, region)

    def matches(self, role: str, external_id: str, name: str, phone: str, email: str) -> bool:
        """Whether a call's participant is this person."""
        if self.kind == "phone":
            return bool(phone) and e164(phone, self.region) == self.value
        if self.kind == "email":
            return email.lower() == self.value
        if self.kind == "customer_id":
            return role == "customer" and external_id == self.value
        return role == "rep" and self.value in (external_id, email, name)


def person_named(raw: str, region: str = "US") -> Person:
    """A person as a lookup names them, of any kind: an e-mail address, a phone number, else a customer id."""
    raw = raw.strip()
    if "@" in raw:
        return Person.of("email", raw, region)
    if e164(raw, region) is not None and sum(c.isdigit() for c in raw) >= 7:
        return Person.of("phone", raw, region)
    return Person.of("customer_id", raw, region)
