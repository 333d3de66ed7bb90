"""The image's HEALTHCHECK: exit 0 when the server in this container is ready (``/health/ready``), 1 otherwise.

Standard library only. It asks the port and scheme the server uses: ``MEDIA_SERVER_PORT`` (8080), HTTPS when
``MEDIA_SERVER_TLS__CERT`` is set (the certificate is for the public name, not 127.0.0.1: not verified here).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("MEDIA_SERVER_PORT", "8080")
    tls = bool(os.environ.get("MEDIA_SERVER_TLS__CERT"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health/ready"
    context = ssl._create_unverified_context() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
