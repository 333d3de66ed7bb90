"""The inference core: voice activity detection, speech recognition and the per-device decode scheduler.

It sees audio and returns words. It knows nothing about calls, teams or consent, and never imports
``media_server``.
"""
