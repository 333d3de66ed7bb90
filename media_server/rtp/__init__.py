"""Receive-only RTP, protocol-neutral (SIPREC uses it; any RTP-based ingest could): packets in, decoded audio on
the call's timeline out.

``packet.py`` parses, ``jitterbuffer.py`` puts packets back in order, ``formats.py`` says what the SDP negotiated,
``codecs.py`` decodes it, ``dtmf.py`` reads telephone-events, ``receiver.py`` (``RtpReceiver``) runs one stream on
one local port, and ``ports.py`` (``PortAllocator``) finds it that port.
"""
