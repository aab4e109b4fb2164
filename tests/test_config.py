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


def test_out_of_range_values_are_all_reported_naming_the_key():
    """The reproduction: healthy 120, watch -5 and drop_points -3 made every account watch and alerted on rises."""
    with pytest.raises(ConfigError, match="3 problem") as err:
        config_from_dict({"bands": {"healthy": 120, "watch": -5}, "alerts": {"drop_points": -3}})
    text = str(err.value)
    assert "bands.healthy: must be between 0 and 100 (a score; watch < healthy), found 120.0" in text
    assert "bands.watch: must be between 0 and 100" in text
    assert "alerts.drop_points: must be in (0, 100] (a drop of at least this many points alerts), found -3.0" in text


@pytest.mark.parametrize(("data", "message"), [
    ({"timeline": {"lead_times_days": [30, 0]}}, r"timeline.lead_times_days\[1\]: must be between 1 and 3650"),
    ({"split": {"train": 0.7, "calibration": 0.2, "test": 0.2}}, r"must sum to 1, found 0.7 \+ 0.2 \+ 0.2 = 1.1"),
    ({"split": {"test": 0}}, r"split.test: must be in \(0, 1\)"),
    ({"model": {"learning_rate": 0}}, r"model.learning_rate: must be in \(0, 1\]"),
    ({"model": {"max_depth": 0}}, r"model.max_depth: use -1 \(no limit\) or a depth of at least 1"),
    ({"model": {"monotone": {"x": 2}}}, r"model.monotone.x: must be between -1 and 1"),
    ({"drift": {"psi_warn": 0.3}}, r"drift: psi_warn must be below psi_alert, found 0.3 and 0.25"),
    ({"scorecard": {"weights": {"usage": -1}}}, r"scorecard.weights.usage: must be ≥ 0"),
    ({"adjustments": {"rules": [{"points": 500}]}}, r"adjustments.rules\[0\].points: must be between -100 and 100"),
    ({"adjustments": {"rules": [{"op": "=>"}]}}, r"adjustments.rules\[0\].op: use one of"),
    ({"playbooks": {"advocate_min_nps": 11}}, r"playbooks.advocate_min_nps: must be between 0 and 10"),
    ({"freshness": {"max_lag_days": -1}}, r"freshness.max_lag_days: must be between 0 and 3650"),
    ({"freshness": {"max_lag_days_by_table": {"survey": 30}}}, r"unknown table 'survey'; did you mean 'surveys'"),
    ({"output": {"keep_batches": -2}}, r"output.keep_batches: must be ≥ 0"),
])
def test_each_range_and_relation_names_the_key_and_the_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_every_numeric_field_declares_its_range():
    from healthscore.config import RANGES, numeric_fields

    # the defaults have no rule and no monotone override: walk a config that has one of each too
    full = config_from_dict({"adjustments": {"rules": [{}]}, "model": {"monotone": {"tenure_days": 1}}})
    keys = {key for key, _, _ in numeric_fields(full)}
    assert keys == set(RANGES), (keys - set(RANGES), set(RANGES) - keys)
    for key, shown, value in numeric_fields(full):
        assert value in RANGES[key], shown  # the defaults are in range


def test_docs_show_the_ranges_and_the_defaults():
    from pathlib import Path

    from healthscore.config import ranges_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text(encoding="utf-8")
    assert ranges_markdown() in doc, "regenerate the ranges table in docs/config.md from config.ranges_markdown()"
    defaults = doc.split("## Defaults, in full", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(defaults) == Config().to_dict()
