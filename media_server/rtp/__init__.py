"""The RTP receive side of the SIPREC recording server: packets in, decoded audio on the call's timeline out.

``RtpReceiver`` (receiver.py) takes one stream on one local port; ``PortAllocator`` (ports.py) finds it a
port; ``RtpFormat`` (formats.py) says what the SDP negotiated; ``decoder_for`` (codecs.py) decodes it.
"""

from media_server.rtp.codecs import AudioDecoder, DecodeError, UnsupportedCodec, decoder_for
from media_server.rtp.formats import SUPPORTED_CODECS, TELEPHONE_EVENT, RtpFormat
from media_server.rtp.ports import PortAllocator, PortsExhausted
from media_server.rtp.receiver import ReceiverStats, RtpReceiver

__all__ = [
    "SUPPORTED_CODECS",
    "TELEPHONE_EVENT",
    "AudioDecoder",
    "DecodeError",
    "PortAllocator",
    "PortsExhausted",
    "ReceiverStats",
    "RtpFormat",
    "RtpReceiver",
    "UnsupportedCodec",
    "decoder_for",
]
