"""SIPREC (RFC 7866) recording sessions: the request body, the recording metadata, the media offer and answer.

The SIP stack itself is aiosipua's; this package holds what SIPREC adds on top of it.
"""
