"""SRTP keyed with SDES (RFC 4568 ``a=crypto``), as SBCs offer it for recorded media: read, answered, decrypted.

An offer carries one or more ``a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:length] [params]``
lines per m-line, most preferred first. :func:`choose_crypto` takes the first one whose suite and parameters
this module can receive; :meth:`SdesCrypto.answer` makes the answerer's own line (same tag and suite, a fresh
key: RFC 4568 §6.1 wants each direction keyed by its sender, even though a recording server sends nothing).
Decryption is libsrtp's, through pylibsrtp (the binding aiortc uses for DTLS-SRTP): one session per stream
with an any-inbound-SSRC policy, so a new SSRC (SBC failover, a re-INVITE) is taken without a new key, and
libsrtp's replay window and authentication drop what was not sent by the key's holder.

Suites: ``AES_CM_128_HMAC_SHA1_80`` and ``_32`` (RFC 4568), ``AEAD_AES_128_GCM`` and ``AEAD_AES_256_GCM``
(RFC 7714). Not taken (the line is skipped, and without another one the stream is refused with a reason):
other suites (AES-192/256-CM, F8, NULL), several keys on one line, an MKI with the GCM suites, and the session
parameters ``UNENCRYPTED_SRTP``, ``UNAUTHENTICATED_SRTP``, ``KDR`` other than 0 and ``FEC_KEY``. An MKI with
the AES-CM suites (``|1:1``, as some SBCs add) is checked and removed before libsrtp sees the packet: it sits
between the encrypted payload and the authentication tag (RFC 3711 §3.1), outside what the tag covers.
Lifetimes are accepted and not enforced (2^31 or 2^48 packets: far beyond a call).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field

import pylibsrtp

__all__ = ["SUITES", "CryptoError", "SdesCrypto", "SrtpDecrypter", "SrtpError", "choose_crypto"]


@dataclass(frozen=True)
class Suite:
    name: str
    profile: int
    key_length: int  # master key + master salt, bytes
    tag_length: int  # SRTP authentication tag, bytes (GCM: inside the ciphertext)
    aead: bool = False


SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("AES_CM_128_HMAC_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30, 10),
        Suite("AES_CM_128_HMAC_SHA1_32", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 30, 4),
        Suite("AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28, 16, aead=True),
        Suite("AEAD_AES_256_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44, 16, aead=True),
    )
}

_LINE = re.compile(r"^(\d{1,9})\s+(\S+)\s+(\S+)((?:\s+\S+)*)\s*$")
_ECHOED = ("UNENCRYPTED_SRTCP",)  # declarative parameters the answer repeats (RFC 4568 §6.3.1)
_REFUSED = ("UNENCRYPTED_SRTP", "UNAUTHENTICATED_SRTP", "FEC_KEY")


class CryptoError(ValueError):
    """An ``a=crypto`` line that cannot be used; the message says why, for the 488's reason."""


class SrtpError(Exception):
    """A packet that did not decrypt: not authentic (wrong key, forged, altered), replayed, or not SRTP."""


@dataclass(frozen=True)
class SdesCrypto:
    """One usable ``a=crypto`` line: the key (master key || salt) of the side that sends with it."""

    tag: int
    suite: str
    key: bytes = field(repr=False)  # a secret: in no repr, log or reason
    mki: bytes = b""  # the MKI value every packet carries (big-endian, its declared length), or none
    window: int = 0  # WSH: the replay window to use, 0: libsrtp's default
    echoed: tuple[str, ...] = ()  # session parameters the answer repeats

    @classmethod
    def parse(cls, value: str) -> SdesCrypto:
        """An ``a=crypto`` attribute's value (after ``crypto:``); :class:`CryptoError` if it cannot be used."""
        match = _LINE.match(value.strip())
        if match is None:
            raise CryptoError("malformed crypto attribute")  # never its text: it holds the key
        tag, name, key_params, params = int(match[1]), match[2], match[3], match[4].split()
        suite = SUITES.get(name.upper())
        if suite is None:
            raise CryptoError(f"crypto suite {name[:40]} not supported")
        if ";" in key_params:
            raise CryptoError(f"{suite.name}: several keys on one line (MKI key switching) not supported")
        if not key_params.lower().startswith("inline:"):
            raise CryptoError(f"{suite.name}: key method {key_params.split(':')[0][:20]} not supported (only inline)")
        key_text, *extras = key_params[len("inline:") :].split("|")
        try:
            key = base64.b64decode(key_text + "=" * (-len(key_text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError(f"{suite.name}: key is not base64") from None
        if len(key) != suite.key_length:
            raise CryptoError(f"{suite.name}: key and salt are {len(key)} bytes, not {suite.key_length}")
        mki = b""
        for extra in extras:
            if ":" in extra:
                mki = _mki(suite, extra)
            elif not re.fullmatch(r"2\^\d{1,2}|\d{1,20}", extra):
                raise CryptoError(f"{suite.name}: malformed key lifetime {extra[:20]!r}")
        window, echoed = 0, []
        for param in params:
            name_, _, setting = param.partition("=")
            upper = name_.upper()
            if upper in _REFUSED:
                raise CryptoError(f"{suite.name}: session parameter {upper} not supported")
            if upper == "KDR" and setting.strip() not in ("", "0"):
                raise CryptoError(f"{suite.name}: key derivation rate KDR={setting[:10]} not supported")
            if upper == "WSH" and setting.isdigit():
                window = max(64, min(int(setting), 0x7FFF))
            if upper in _ECHOED:
                echoed.append(upper)
            # FEC_ORDER (no FEC here) and parameters of later extensions change nothing
        return cls(tag, suite.name, key, mki, window, tuple(echoed))

    @property
    def attribute(self) -> str:
        """This crypto as an ``a=crypto`` value (the answer's: no lifetime, no MKI)."""
        key = base64.b64encode(self.key).decode()
        return " ".join([str(self.tag), self.suite, f"inline:{key}", *self.echoed])

    def answer(self) -> SdesCrypto:
        """The answerer's line for this offer: the same tag, suite and echoed parameters, a key of its own."""
        return SdesCrypto(self.tag, self.suite, os.urandom(SUITES[self.suite].key_length), echoed=self.echoed)

    def same_key(self, other: SdesCrypto | None) -> bool:
        return other is not None and (self.suite, self.key, self.mki) == (other.suite, other.key, other.mki)


def _mki(suite: Suite, text: str) -> bytes:
    value, _, length = text.partition(":")
    if not value.isdigit() or not length.isdigit() or not 1 <= int(length) <= 128:
        raise CryptoError(f"{suite.name}: malformed MKI {text[:20]!r}")
    if suite.aead:
        raise CryptoError(f"{suite.name}: an MKI is not supported with AEAD suites")
    try:
        return int(value).to_bytes(int(length), "big")
    except OverflowError:
        raise CryptoError(f"{suite.name}: MKI {value[:20]} does not fit in {length} bytes") from None


def choose_crypto(values: list[str]) -> SdesCrypto:
    """The first usable of an m-line's ``a=crypto`` values (offer order: the SRC's preference).

    :class:`CryptoError` when none is: its message says what was wrong with each (``SUITES`` are taken).
    """
    problems = []
    for value in values:
        try:
            return SdesCrypto.parse(value)
        except CryptoError as exc:
            problems.append(str(exc))
    if not problems:
        raise CryptoError("SRTP offered without an a=crypto (SDES) key: DTLS-SRTP, MIKEY and ZRTP are not supported")
    raise CryptoError("No usable SRTP crypto: " + "; ".join(dict.fromkeys(problems)))


class SrtpDecrypter:
    """Decrypts and authenticates the SRTP packets of one stream sent with the SRC's ``crypto``."""

    def __init__(self, crypto: SdesCrypto) -> None:
        suite = SUITES[crypto.suite]
        policy = pylibsrtp.Policy(
            key=crypto.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=suite.profile
        )
        if crypto.window:
            policy.window_size = crypto.window
        self.crypto = crypto
        self._session = pylibsrtp.Session(policy)
        self._mki = crypto.mki
        self._tag_length = suite.tag_length

    def unprotect(self, packet: bytes) -> bytes:
        """The RTP packet inside an SRTP one; :class:`SrtpError` if it is not authentic or not SRTP."""
        if self._mki:
            end = len(packet) - self._tag_length
            start = end - len(self._mki)
            if start < 12 or packet[start:end] != self._mki:
                raise SrtpError("MKI missing or not the negotiated one")
            packet = packet[:start] + packet[end:]
        try:
            return self._session.unprotect(packet)
        except pylibsrtp.Error as exc:
            raise SrtpError(str(exc)) from None
