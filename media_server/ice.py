"""ICE servers (STUN/TURN) for the server's WebRTC peers, and how WHIP offers them to clients (RFC 9725 §4.6)."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCIceServer

from media_server.config import WebRtcSettings


def rtc_configuration(settings: WebRtcSettings) -> RTCConfiguration:
    """What every ``RTCPeerConnection`` of the server is created with: host candidates only when none is set."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=server.urls, username=server.username or None, credential=server.credential or None)
            for server in settings.ice_servers
        ]
    )


def link_headers(settings: WebRtcSettings) -> list[str]:
    """One ``Link: <url>; rel="ice-server"`` value per URL, with TURN credentials, as WHIP clients read them."""
    out = []
    for server in settings.ice_servers:
        for url in server.urls:
            value = f'<{url}>; rel="ice-server"'
            if server.username:
                value += f'; username="{_quoted(server.username)}"; credential="{_quoted(server.credential)}"'
                value += '; credential-type="password"'
            out.append(value)
    return out


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
