"""Clients that play calls into the server as telephony platforms do (the ``stream`` command, tests, benchmarks)."""
