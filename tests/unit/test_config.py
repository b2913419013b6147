from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterd.config import SETTINGS, Config, markdown_table


def test_flags_beat_environment_beat_defaults():
    config = Config.load({"pool_max": "7"}, environ={"METER_POOL_MAX": "3", "METER_POOL_TIMEOUT": "500ms"})
    assert config.pool_max == 7
    assert config.pool_timeout == 0.5
    assert config.listen == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("text", "seconds"), [("2", 2.0), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("30d", 2592000.0)]
)
def test_durations(text, seconds):
    assert Config.load({}, environ={"METER_GRACE_PERIOD": text}).grace_period == seconds


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="METER_POOL_MAX"):
        Config.load({}, environ={"METER_POOL_MAX": "many"})


def test_pool_min_above_max_is_refused():
    with pytest.raises(ValueError, match="pool_min"):
        Config.load({"pool_min": "5", "pool_max": "2"}, environ={})


def test_every_setting_is_a_config_field():
    assert [s.name for s in SETTINGS] == list(Config.__dataclass_fields__)


def test_readme_settings_table_is_current():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = re.search(r"<!-- settings-table.*?-->\n(.*?)\n<!-- end settings-table -->", readme, re.S).group(1)
    assert table == markdown_table(), "regenerate the README table from meterd.config.markdown_table()"
