"""Listen-in: a manager hears a live call in the browser over WebRTC; every listen-in is audited."""
