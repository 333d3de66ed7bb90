"""Settings: defaults < config file < environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from media_server.config import ConsentPolicy, load_settings


def test_defaults_are_the_embedded_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.consent_policy is ConsentPolicy.ALL_PARTY
    assert s.db_url.startswith("sqlite+aiosqlite:///") and s.db_url.endswith("data/media_server.db")
    assert (s.asr.model, s.asr.device, s.asr.compute_type) == (None, "cpu", "int8")


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "server.toml"
    cfg.write_text(
        'port = 9000\nconsent_policy = "one_party"\n[asr]\nmodel = "small.en"\n[streaming]\nendpointing_ms = 700\n'
    )
    s = load_settings(cfg)
    assert (s.port, s.consent_policy, s.asr.model, s.streaming.endpointing_ms) == (
        9000,
        ConsentPolicy.ONE_PARTY,
        "small.en",
        700,
    )
    monkeypatch.setenv("MEDIA_SERVER_PORT", "9100")
    monkeypatch.setenv("MEDIA_SERVER_STREAMING__ENDPOINTING_MS", "300")
    s = load_settings(cfg)
    assert (s.port, s.streaming.endpointing_ms, s.asr.model) == (9100, 300, "small.en")
    s = load_settings(cfg, port=9200, host=None)
    assert s.port == 9200 and s.host == "127.0.0.1"


def test_bad_settings_are_refused_with_the_field_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[streaming]\nendpointing_ms = 5\n")
    with pytest.raises(ValidationError, match="endpointing_ms"):
        load_settings(cfg)
    cfg.write_text('consent_policy = "whatever"\n')
    with pytest.raises(ValidationError, match="consent_policy"):
        load_settings(cfg)
    cfg.write_text("unknown_setting = 1\n")
    with pytest.raises(ValidationError, match="unknown_setting"):
        load_settings(cfg)


def test_grpc_port_flag_overrides_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from media_server.cli import _settings, build_parser

    cfg = tmp_path / "server.toml"
    cfg.write_text("[grpc]\nport = 6000\nmax_streams = 20\n")
    assert load_settings(cfg).grpc.port == 6000
    monkeypatch.setenv("MEDIA_SERVER_GRPC__PORT", "6100")
    assert load_settings(cfg).grpc.port == 6100
    args = build_parser().parse_args(["serve", "--config", str(cfg), "--grpc-port", "6200"])
    s = _settings(args)
    assert (s.grpc.port, s.grpc.max_streams, s.grpc.enabled) == (6200, 20, True)


def test_the_readme_configuration_example_is_a_valid_config_file(tmp_path: Path) -> None:
    """What a user copies from the README's Configuration section loads with ``--config`` as it is."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "media-server.toml"
    path.write_text(example)
    settings = load_settings(path)
    assert settings.sip.allow == ["192.0.2.10/32"] and settings.http.header_timeout_s == 10
    assert settings.calls.max_by_source.twilio == 500 and not settings.grpc.reflection
