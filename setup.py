"""Everything else is in pyproject.toml: this adds the dashboard to the packages.

The dashboard's files live in ``dashboard/`` at the top of the source tree (the server serves them from there in a
checkout); in the wheel they are the package data of ``media_server.dashboard``, where ``media_server.app`` looks
first.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["media_server*", "models*"], exclude=["*.__pycache__"]),
        "media_server.dashboard",
    ],
    package_dir={"media_server.dashboard": "dashboard"},
)
