import sys

from media_server.cli import main

sys.exit(main())
