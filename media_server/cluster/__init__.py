"""Several servers as one: each holds a lease in the shared database (``lease.py``; one whose lease runs out is
taken over), shows its live calls to the others (``live.py``, through Redis) and hands on the requests about a
call another server holds (``forward.py``)."""
