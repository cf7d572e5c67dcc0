"""CoverHunterMPS training configs: keys with a meaning here mapped to csi's (one log line each),
keys without an effect ignored with a warning, the rest refused by key with the reason; a
CoverHunter file reads exactly as before; an MPS manifest + config trains a few steps."""
import copy
import json
import logging

import pytest
import yaml

from csi.config import to_dict
from csi.registry import ConfigError
from csi.train.config import map_coverhunter_mps, parse_hparams
from tests.fixtures import coverhunter_mps

WHERE = "mps/hparams.yaml"


def hp(**changes):
    return coverhunter_mps.training_hparams("data/train.txt", "data/covers80_testset/full.txt", **changes)


def refusal(**changes) -> str:
    with pytest.raises(ConfigError) as e:
        parse_hparams(hp(**changes), where=WHERE)
    assert str(e.value).startswith(f"{WHERE}: CoverHunterMPS key(s) csi does not implement:")
    return str(e.value)


def test_the_mps_layout_is_mapped_with_a_log_line_each(caplog):
    with caplog.at_level(logging.INFO, logger="csi.config"):
        parsed = parse_hparams(hp(), where=WHERE)
    assert parsed.model["ce"] == {"output_dims": 100, "weight": 1.0, "gamma": 2} and "foc" not in parsed.model
    assert parsed.dev_sets["covers80"].every_n_epoch_to_dev == 1
    assert to_dict(parsed.train.early_stopping) == {"patience": 3, "dev_set": "covers80"}
    assert parsed.train.optimizer == {"name": "adamw"}
    assert parsed.train.spec_augmentation["roll_pitch"] == {"prob": 0.5, "shift_num": 12}
    assert parsed.mapped == {
        "foc": "ce", "optimizer: adamw": "optimizer: {name: adamw}",
        "covers80.every_n_epoch_to_test": "covers80.every_n_epoch_to_dev",
        "early_stop_metric: mAP, early_stopping_patience: 3, map_stopping_testsets: [covers80]":
            "early_stopping: {patience: 3, dev_set: covers80} (CoverHunterMPS would compare a moving average of "
            "the MAP, map_smoothing_alpha 0.3 by default; csi compares the raw MAP)",
        "spec_augmentation.roll_pitch.method: default":
            "spec_augmentation.roll_pitch (CoverHunter's roll of the bins by -1, 0 or +1 times shift_num)"}
    for key in parsed.mapped:
        assert f"{WHERE}: {key}: CoverHunterMPS key read as" in caplog.text
    assert set(parsed.ignored) == {"prodigy_d_coef", "prodigy_safeguard_warmup", "hold_steps", "val_path",
                                   "every_n_epoch_to_test", "bootstrap", "num_gpus"}
    assert f"{WHERE}: val_path: ignored — CoverHunterMPS logs a focal loss" in caplog.text
    resolved = parsed.resolved()                     # the run record: csi's keys only
    assert "foc" not in resolved and resolved["ce"]["gamma"] == 2 and "hold_steps" not in resolved
    assert parse_hparams(resolved, where="again").mapped == {}


def test_early_stopping_defaults_and_smoothing():
    parsed = parse_hparams(hp(early_stopping_patience=None), where=WHERE)
    assert parsed.train.early_stopping.patience == 20          # CoverHunterMPS's default patience
    assert parse_hparams(hp(map_smoothing_alpha=1.0), where=WHERE).train.early_stopping.dev_set == "covers80"


@pytest.mark.parametrize("changes, key, reason", [
    ({"device": "mps"}, "device: mps", "pass tools.train --device cpu|cuda"),
    ({"optimizer": "prodigy"}, "optimizer: prodigy", "the Prodigy optimizer is not implemented"),
    ({"optimizer": "prodigy"}, "prodigy_d_coef", "a setting of the Prodigy optimizer"),
    ({"optimizer": "sgd"}, "optimizer: sgd", "CoverHunterMPS names adamw or prodigy"),
    ({"hold_steps": 2000}, "hold_steps: 2000", "csi's schedule has no hold at the initial rate"),
    ({"early_stop_metric": "val_loss"}, "early_stop_metric: val_loss", "csi has no validation loss"),
    ({"early_stop_metric": None}, "early_stop_metric: mAP", None),   # absent: CoverHunterMPS's val_loss
    ({"early_stop_metric": "loss"}, "early_stop_metric: loss", "CoverHunterMPS takes val_loss or mAP"),
    ({"map_stopping_testsets": []}, "map_stopping_testsets", "missing or empty with early_stop_metric: mAP"),
    ({"map_stopping_testsets": ["covers80", "reels50easy"]}, "map_stopping_testsets: [covers80, reels50easy]",
     "follows one dev set's MAP"),
    ({"map_smoothing_alpha": 0.3}, "map_smoothing_alpha: 0.3", "a moving average of it is not implemented"),
    ({"early_stopping": {"patience": 2}}, "early_stop_metric", "csi's early_stopping is given too"),
    ({"k_folds": 5}, "k_folds", "CoverHunterMPS's tools/train_prod.py"),
    ({"final_lr_decay": 0.98}, "final_lr_decay", "k-fold training"),
    ({"ce": {"output_dims": 10, "weight": 1.0, "gamma": 2}}, "foc", "keep one"),
    ({"spec_augmentation": {"roll_pitch": {"prob": 0.5, "shift_num": 7, "method": "low_melody"}}},
     "spec_augmentation.roll_pitch.method: low_melody", "melody-preserving shifts"),
])
def test_keys_without_an_implementation_are_refused_by_key_with_the_reason(changes, key, reason):
    text = refusal(**changes)
    if reason is None:                                   # the absent metric: the patience key is named
        assert "early_stopping_patience: 3 — CoverHunterMPS stops on the val_path focal loss (its default metric)" in text
    else:
        assert f"\n  {key} — " in text and reason in text.split(f"\n  {key} — ")[1].split("\n")[0]


def test_val_path_without_a_metric_is_its_loss_stopping():
    text = refusal(early_stop_metric=None, early_stopping_patience=None)
    assert "\n  val_path — with no early_stop_metric CoverHunterMPS stops on the focal loss of val_path" in text
    bare = parse_hparams(hp(early_stop_metric=None, early_stopping_patience=None, val_path=None,
                            map_stopping_testsets=None), where=WHERE)
    assert bare.train.early_stopping is None and "val_path" not in bare.ignored


def test_every_refusal_is_in_one_error():
    text = refusal(device="mps", hold_steps=10, k_folds=5)
    assert text.count("\n  ") == 3


def test_dev_set_given_both_spellings_and_the_top_level_weight_decay():
    dev = {"query_path": "q", "ref_path": "q", "every_n_epoch_to_test": 1, "every_n_epoch_to_dev": 2}
    assert "covers80.every_n_epoch_to_test — CoverHunterMPS's name for every_n_epoch_to_dev" in refusal(covers80=dev)
    parsed = parse_hparams(hp(weight_decay=0.5), where=WHERE)      # MPS's AdamW ignores it: torch's 0.01
    assert parsed.train.weight_decay == 0.01 and "weight_decay" in parsed.ignored


def test_coverhunter_files_read_exactly_as_before(caplog):
    reference = {   # CoverHunter's egs/covers80/config/hparams.yaml layout (ce, every_n_epoch_to_dev, ...)
        "train_path": "data/covers80/full.txt", "train_sample_path": "data/covers80/full.txt",
        "dev_path": "data/covers80/full.txt",
        "covers80": {"query_path": "data/covers80/full.txt", "ref_path": "data/covers80/full.txt",
                     "every_n_epoch_to_dev": 1},
        "every_n_epoch_to_dev": 1, "every_n_epoch_to_save": 1, "data_type": "cqt", "chunk_frame": [1125, 900, 675],
        "chunk_s": 135, "mode": "random", "mean_size": 3, "m_per_class": 8, "cqt": {"hop_size": 0.04},
        "spec_augmentation": {"random_erase": {"prob": 0.5, "erase_num": 4}, "roll_pitch": {"prob": 0.5, "shift_num": 12}},
        "seed": 1234, "num_workers": 1, "num_gpus": 1, "batch_size": 16, "learning_rate": 0.001, "adam_b1": 0.8,
        "adam_b2": 0.99, "lr_decay": 0.9975, "min_lr": 0.0001, "warmup": False, "warmup_steps": 20000,
        "input_dim": 96, "embed_dim": 128, "encoder": {"output_dims": 128, "num_blocks": 6, "attention_dim": 256},
        "pool_type": "attention", "ce": {"output_dims": 30000, "weight": 1.0, "gamma": 2},
        "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}
    before = copy.deepcopy(reference)
    mapping = map_coverhunter_mps(reference, "ch.yaml")
    assert mapping.hp == before and mapping.mapped == {} and mapping.ignored == {} and reference == before
    with caplog.at_level(logging.INFO, logger="csi.config"):
        parsed = parse_hparams(reference, where="ch.yaml")
    assert parsed.mapped == {} and "CoverHunterMPS" not in caplog.text and parsed.raw is reference
    assert set(parsed.ignored) == {"train_sample_path", "dev_path", "num_gpus"}
    with pytest.raises(ConfigError, match="unknown key"):            # csi's own strictness is unchanged
        parse_hparams(dict(reference, every_n_epoch_to_tset=1), where="ch.yaml")


def test_an_mps_manifest_and_config_train_a_few_steps(tmp_path):
    """tools.train on an experiment whose hparams.yaml and manifests are in CoverHunterMPS's
    formats (perf/work/work_id, foc, optimizer: adamw, ...): it trains, validates on the MPS
    test set and records csi's keys."""
    from tools import train as train_tool

    full = coverhunter_mps.write_full(tmp_path / "data", n_works=4, per_work=4, frames=200)
    exp = tmp_path / "exp"
    coverhunter_mps.write_training_hparams(exp, full, full)
    assert train_tool.main([str(exp)]) == 0                    # max_epochs: 1
    assert (exp / "pt_model").is_dir() and any(p.name.startswith("g_") for p in (exp / "pt_model").iterdir())
    run = yaml.safe_load((exp / "train_run.yaml").read_text())
    text = json.dumps(run["config"])
    assert '"ce"' in text and '"foc"' not in text and '"dev_set": "covers80"' in text
    assert run["mapped_keys"]["foc"] == "ce"                     # what became what, next to the outputs
    result = json.loads((exp / "train_result.json").read_text())
    assert result["steps"] >= 1 and result["stopped_by"] == "max_epochs"
    history = json.loads((exp / "history.json").read_text())
    assert 0 <= history[0]["map"]["covers80"] <= 1            # the first epoch was validated on the MPS test set


def test_make_config_writes_a_coverhunter_mps_file_in_csis_keys(tmp_path):
    """The recipe's stage 3 resolves configs with tools.make_config: an MPS file becomes csi's
    keys there, so that the model directory (hparams.yaml) opens for stages 4 and 6."""
    import yaml

    from tests.fixtures.coverhunter_mps import write_training_hparams
    from tools import make_config

    src = write_training_hparams(tmp_path / "mps", "train.txt", "test.txt")
    dst = tmp_path / "hparams.yaml"
    assert make_config.main([str(src), str(dst)]) == 0
    resolved = yaml.safe_load(dst.read_text())
    assert "foc" not in resolved and "ce" in resolved
