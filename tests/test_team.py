"""Team configuration over REST: validated as a whole, clear errors, admin keys only, one team's own."""

from __future__ import annotations

import pytest

from media_server.teams.config import TeamConfig
from tests.conftest import Server, create_key

CONFIG = {
    "trackers": [
        {"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa", "Zorvexa Cloud"]},
        {"name": "discount", "category": "pricing", "phrases": ["discount", "price"], "boost": False},
    ],
    "battlecards": [{"tracker": "Zorvexa", "text": "We integrate with your dialer; Zorvexa does not."}],
    "thresholds": {"talk_ratio": 0.7, "monologue_s": 45},
    "redaction": ["card", "ssn"],
}


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, str]:
    """A team of its own, so that its trackers and policy touch no other test's calls."""
    return {role: create_key(server.data_dir, "configured", role) for role in ("admin", "manager", "rep")}


def test_an_admin_sets_the_configuration_and_the_team_reads_it(server: Server, keys: dict[str, str]) -> None:
    with server.http(keys["manager"]) as http:
        assert http.put("/v1/team/config", json=CONFIG).status_code == 403
    with server.http(keys["admin"]) as http:
        put = http.put("/v1/team/config", json=CONFIG)
        assert put.status_code == 200, put.text
    with server.http(keys["rep"]) as http:
        got = http.get("/v1/team/config").json()
        assert http.put("/v1/team/config", json=CONFIG).status_code == 403
    assert got["team"] == "configured"
    config = got["config"]
    assert [t["name"] for t in config["trackers"]] == ["Zorvexa", "discount"]
    assert config["thresholds"]["talk_ratio"] == 0.7 and config["thresholds"]["monologue_s"] == 45
    assert config["thresholds"]["words_per_minute"] == 190  # defaults fill what was not given
    assert config["redaction"] == ["card", "ssn"]
    with server.http(server.keys["other"]) as http:  # another team has its own (the defaults)
        assert http.get("/v1/team/config").json()["config"]["trackers"] == []
    assert TeamConfig.model_validate(config).keyterms() == ["Zorvexa", "Zorvexa Cloud"]


def test_a_bad_configuration_is_refused_whole_with_every_problem_named(server: Server, keys: dict[str, str]) -> None:
    bad = {
        "trackers": [
            {"name": "Zorvexa", "category": "rivals", "phrases": ["Zorvexa"]},
            {"name": "empty", "phrases": []},
        ],
        "thresholds": {"talk_ratio": 1.5, "bogus": 1},
        "redaction": ["card", "passport"],
    }
    with server.http(keys["admin"]) as http:
        before = http.get("/v1/team/config").json()
        response = http.put("/v1/team/config", json=bad)
        assert response.status_code == 400
        errors = response.json()["detail"]["errors"]
        assert any(e.startswith("trackers[0].category: category must be one of") for e in errors), errors
        assert any(e.startswith("trackers[1].phrases:") for e in errors), errors
        assert any(e.startswith("thresholds.talk_ratio:") for e in errors), errors
        assert any(e.startswith("thresholds.bogus:") for e in errors), errors
        assert any("passport" in e and "valid: card" in e for e in errors), errors
        assert http.get("/v1/team/config").json() == before  # nothing of it applied
        dangling = {"battlecards": [{"tracker": "Nobody", "text": "x"}]}
        response = http.put("/v1/team/config", json=dangling)
        assert response.status_code == 400 and "no tracker of category 'competitors'" in response.text
        assert http.put("/v1/team/config", content=b"not json").status_code == 400
