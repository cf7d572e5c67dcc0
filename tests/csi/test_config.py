"""Layered configs (csi.config.load_config, ``base:``) and tools.make_config --print_config."""
import pytest
import yaml

from csi.config import load_config, merge_configs
from csi.registry import ConfigError
from tests.helpers import REPO, train_config
from tools import make_config


def test_base_layers_merge_mappings_and_replace_the_rest(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\nlist: [1, 2]\nsection: {p: 1, q: 2}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nsection: {q: 3}\nlist: [9]\n")
    (tmp_path / "c.yaml").write_text("base: [sub/b.yaml]\ny: 2\nx: null\n")
    assert load_config(tmp_path / "c.yaml") == {"x": None, "list": [9], "section": {"p": 1, "q": 3}, "y": 2}
    assert merge_configs({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


def test_bad_bases_are_refused_by_name(tmp_path):
    (tmp_path / "loop1.yaml").write_text("base: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("base: loop1.yaml\n")
    with pytest.raises(ConfigError, match="a circle of bases"):
        load_config(tmp_path / "loop1.yaml")
    (tmp_path / "gone.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"gone.yaml: base: nowhere.yaml: file not found"):
        load_config(tmp_path / "gone.yaml")
    (tmp_path / "num.yaml").write_text("base: 3\n")
    with pytest.raises(ConfigError, match="expected a file name"):
        load_config(tmp_path / "num.yaml")


def test_demo_configs_share_one_base():
    quick, many = train_config("demo_quick"), train_config("demo_many_works")
    assert {k: v for k, v in many.items() if quick.get(k) != v} == {"m_per_class": 2, "max_steps": 3432}
    for name in ("demo_quick", "demo_coverhunter", "demo_segments"):
        assert yaml.safe_load((REPO / "conf" / "train" / f"{name}.yaml").read_text())["base"] == "demo_base.yaml"
    assert train_config("demo_full")["early_stopping"] == {"patience": 25, "dev_set": "val"}


def test_make_config_prints_and_writes_the_resolved_flat_config(tmp_path, capsys):
    out = tmp_path / "hparams.yaml"
    assert make_config.main([str(REPO / "conf/train/demo_many_works.yaml"), str(out), "--set", "seed=7",
                             "--print_config"]) == 0
    printed = capsys.readouterr().out
    written = yaml.safe_load(out.read_text())
    assert yaml.safe_load(printed) == written and "base" not in written
    assert written["model"] == "pitch_cnn" and written["m_per_class"] == 2 and written["seed"] == 7
    assert printed.startswith("# ") and "resolved" in printed.splitlines()[0]
    with pytest.raises(SystemExit) as e:
        make_config.main([str(REPO / "conf/train/demo_quick.yaml")])     # neither DST nor --print_config
    assert e.value.code == 2
