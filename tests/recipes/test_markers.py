"""egs/TEMPLATE/csi1/stages.sh train_stage: the done marker covers the data as well as the config.

tools.train is replaced by a stub (a bash function named run_tool that records the call
and delegates every other tool to the real run_tool), so no model is trained.
"""
import json

import pytest

from tests.helpers import REPO, run_bash


def _train(root, *sets, fail=False):
    """Run train_stage exp/m conf.yaml with the recipe-style overrides; the stub training
    writes pt_model/g_00000000 and fails (an interrupted run) when ``fail``."""
    overrides = " ".join(f"--set '{s}'" for s in (
        "train_path=data/train/full.txt", "val.query_path=data/val/full.txt", "val.ref_path=data/val/full.txt",
        *sets))
    script = f"""
. {REPO}/utils/lib.sh
. {REPO}/egs/TEMPLATE/csi1/stages.sh
eval "_real_$(declare -f run_tool)"
run_tool() {{
  if [ "$1" = train ]; then
    echo "train $2" >> calls.log
    mkdir -p "$2/pt_model" && cp "$2/config/hparams.yaml" "$2/pt_model/g_00000000"
    {'return 1' if fail else 'return 0'}
  fi
  _real_run_tool "$@"
}}
train_stage exp/m conf.yaml {overrides}
"""
    return run_bash(script, cwd=root)


def _calls(root):
    log = root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _aside(root):
    return sorted(p.name for p in (root / "exp").glob("m.old-*"))


@pytest.fixture
def root(tmp_path):
    (tmp_path / "conf.yaml").write_text("train_path: unset\nbatch_size: 4\n")
    for name in ("train", "val"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "full.txt").write_text(json.dumps({"utt": f"{name}0", "song": "a"}) + "\n")
    return tmp_path


def test_same_config_and_data_is_skipped(root):
    r = _train(root)
    assert r.returncode == 0, r.stderr
    assert _calls(root) == ["train exp/m"]
    marker = (root / "exp/m/.train.done").read_text()
    assert marker.startswith("config ") and "data train_path=data/train/full.txt " in marker
    assert "data val.query_path=data/val/full.txt " in marker and "data val.ref_path=" in marker
    r = _train(root)
    assert r.returncode == 0, r.stderr
    assert _calls(root) == ["train exp/m"] and "already done for these inputs" in r.stderr
    assert _aside(root) == [] and not (root / "exp/m.hparams.yaml.node0.new").exists()


@pytest.mark.parametrize("changed", ["data/train/full.txt", "data/val/full.txt",
                                     "data/train/cqt_feat/fingerprint.json"])
def test_changed_data_moves_the_old_experiment_aside_and_trains_anew(root, changed):
    (root / "data/train/cqt_feat").mkdir()
    (root / "data/train/cqt_feat/fingerprint.json").write_text('{"n_bins": 96}\n')
    assert _train(root).returncode == 0
    old_marker = (root / "exp/m/.train.done").read_text()
    with open(root / changed, "a") as f:
        f.write(json.dumps({"utt": "added", "song": "b"}) + "\n")
    r = _train(root)
    assert r.returncode == 0, r.stderr
    assert _calls(root) == ["train exp/m", "train exp/m"]
    aside = _aside(root)
    assert len(aside) == 1 and aside[0].startswith("m.old-20")
    old = root / "exp" / aside[0]
    assert (old / ".train.done").read_text() == old_marker and (old / "pt_model/g_00000000").is_file()
    assert (root / "exp/m/.train.done").read_text() != old_marker
    assert f"moved aside to exp/{aside[0]}" in r.stderr and "its data changed" in r.stderr
    assert "was: data " in r.stderr and "now: data " in r.stderr
    r = _train(root)                       # and now it is done for the new data
    assert r.returncode == 0 and len(_calls(root)) == 2 and len(_aside(root)) == 1


def test_changed_config_moves_aside_instead_of_stopping(root):
    assert _train(root).returncode == 0
    r = _train(root, "batch_size=8")
    assert r.returncode == 0, r.stderr
    assert len(_calls(root)) == 2 and len(_aside(root)) == 1
    assert "its config differs" in r.stderr
    assert "batch_size: 8" in (root / "exp/m/config/hparams.yaml").read_text()
    assert "batch_size: 4" in (root / "exp" / _aside(root)[0] / "config/hparams.yaml").read_text()
    r = _train(root)                       # back to the first config: moved aside again, never mixed
    assert r.returncode == 0 and len(_calls(root)) == 3 and len(_aside(root)) == 2


def test_interrupted_run_resumes_in_place_unless_the_data_changed(root):
    r = _train(root, fail=True)
    assert r.returncode != 0 and not (root / "exp/m/.train.done").exists()
    r = _train(root)
    assert r.returncode == 0, r.stderr
    assert "resuming exp/m" in r.stderr and _aside(root) == [] and len(_calls(root)) == 2
    (root / "data/train/full.txt").write_text("")
    assert _train(root, fail=True).returncode != 0 and len(_aside(root)) == 1
    (root / "data/train/full.txt").write_text(json.dumps({"utt": "x", "song": "a"}) + "\n")
    r = _train(root)                       # interrupted on other data: not resumed
    assert r.returncode == 0 and len(_aside(root)) == 2 and "its data changed" in r.stderr


def test_experiment_without_data_record_is_moved_aside(root):
    # made before data signatures: the marker is the config checksum alone
    r = run_bash(f"PYTHONPATH={REPO} python3 -m tools.make_config conf.yaml exp/m/config/hparams.yaml "
                 "--set train_path=data/train/full.txt --set val.query_path=data/val/full.txt "
                 "--set val.ref_path=data/val/full.txt && cksum < exp/m/config/hparams.yaml > exp/m/.train.done",
                 cwd=root)
    assert r.returncode == 0, r.stderr
    r = _train(root)
    assert r.returncode == 0, r.stderr
    assert len(_calls(root)) == 1 and len(_aside(root)) == 1
    assert "no record of the data it was trained on" in r.stderr
