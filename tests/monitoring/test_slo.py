"""The SLO file: shipped defaults, a user's file over them, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrive.cli.main import run
from arrive.errors import ConfigError
from arrive.monitoring.slo import DEFAULT_FILE, SloConfig, load_slo


def test_the_shipped_file_holds_the_documented_defaults() -> None:
    shipped = load_slo()
    assert shipped == SloConfig()
    assert shipped.latency.threshold_s == 0.025
    assert shipped.latency.objective == 0.99
    assert shipped.availability.routes == ("/v1/eta", "/v1/eta/batch")
    docs = (Path(__file__).parents[2] / "docs" / "slo.md").read_text(encoding="utf-8")
    assert DEFAULT_FILE.read_text(encoding="utf-8") in docs  # the docs show the file itself


def test_a_user_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "slo.toml"
    path.write_text("[latency]\nthreshold_s = 0.05\n\n[alerts]\ningest_lag_s = 120\n")
    config = load_slo(path)
    assert config.latency.threshold_s == 0.05
    assert config.alerts.ingest_lag_s == 120
    assert config.latency.objective == SloConfig().latency.objective
    assert config.freshness == SloConfig().freshness


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[latency]\nthreshold_s = 0.03\n", "latency.threshold_s: must be a bucket bound"),
        ("[latency]\nthreshold_s = -1\n", "latency.threshold_s: Expected `float` > 0.0"),
        ("[availability]\nobjective = 1.5\n", "availability.objective: Expected `float` < 1.0"),
        ("[freshness]\nobjective = 0.9\n", "freshness.objective: Expected `float` >= 0.931"),
        ("[model_answers]\nobjective = 'high'\n", "model_answers.objective: Expected `float`"),
        ("[availability]\nroutes = []\n", "availability.routes: Expected `array` of length >= 1"),
        ("[availability]\nroutes = ['v1/eta']\n", "availability.routes[0]: Expected `str`"),
        ("[latency]\nthreshold = 0.05\n", "latency: Object contains unknown field `threshold`"),
        ("[alerts]\ndead_letter_ratio = 2\n", "alerts.dead_letter_ratio: Expected `float` <= 1.0"),
        ("[latency\n", "not valid TOML"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "slo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_slo(path)
    message = str(caught.value)
    assert named in message
    assert str(path) in message
    assert "\n" not in message


def test_the_command_says_so_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "slo.toml"
    path.write_text("[latency]\nobjective = 2\n")
    assert run(["slo", "rules", "--slo", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "latency.objective" in err
    assert "Traceback" not in err
    assert run(["slo", "rules", "--slo", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
