"""Typed config: defaults, overrides, every problem reported at once with a did-you-mean."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from healthscore.config import Config, config_from_dict, load_config
from healthscore.errors import ConfigError


def test_defaults_are_documented_values():
    cfg = load_config(None)
    assert cfg.timeline.lead_times_days == (30, 90, 180)
    assert (cfg.bands.healthy, cfg.bands.watch) == (80.0, 60.0)
    assert sum(cfg.scorecard.weights.values()) == 100
    assert cfg.alerts.drop_points == 10
    assert cfg.adjustments.default_expiry_days == 90


def test_yaml_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bands:\n  healthy: 85\ntimeline:\n  lead_times_days: [60]\n")
    cfg = load_config(path)
    assert cfg.bands.healthy == 85.0 and cfg.bands.watch == 60.0
    assert cfg.timeline.lead_times_days == (60,)
    with pytest.raises(AttributeError):
        cfg.bands.healthy = 1  # frozen


def test_unknown_keys_and_bad_values_all_reported_with_did_you_mean():
    with pytest.raises(ConfigError, match="3 problem") as err:
        config_from_dict({"bands": {"helthy": 85}, "tmeline": {}, "alerts": {"drop_points": "ten"}})
    text = str(err.value)
    assert "did you mean 'bands.healthy'" in text
    assert "did you mean 'timeline'" in text
    assert "alerts.drop_points: expected a number" in text


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="sum to 1"):
        config_from_dict({"split": {"train": 0.5, "calibration": 0.2, "test": 0.2}})
    with pytest.raises(ConfigError, match="watch must be below healthy"):
        config_from_dict({"bands": {"healthy": 50, "watch": 60}})
    with pytest.raises(ConfigError, match="unknown component 'usagee'; did you mean 'usage'"):
        config_from_dict({"scorecard": {"weights": {"usagee": 10}}})


def test_round_trip_through_yaml(tmp_path):
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump(Config().to_dict()))
    assert load_config(path) == Config()


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bands: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


COMMANDS = ["simulate", "validate", "features", "train", "score", "explain", "demo", "retrain", "promote",
            "backtest"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = subprocess.run([sys.executable, "-m", "healthscore", command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout and command in out.stdout


def test_bad_config_is_one_paragraph_not_a_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("bands:\n  helthy: 85\n")
    out = subprocess.run([sys.executable, "-m", "healthscore", "features", "--data", str(tmp_path), "--as-of",
                          "2024-01-01", "--out", str(tmp_path / "f.parquet"), "--config", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "did you mean 'bands.healthy'" in out.stderr
    assert "Traceback" not in out.stderr
