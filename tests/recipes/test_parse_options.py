"""utils/parse_options.sh and utils/lib.sh: Kaldi option semantics and stage guards."""
from tests.helpers import REPO, run_bash

PRELUDE = f"""
. {REPO}/utils/lib.sh
stage=0
stop_stage=6
nj=4
use_gpu=false
exp_dir=exp/base
"""


def parse(args: str, body: str = 'echo "stage=$stage stop_stage=$stop_stage nj=$nj gpu=$use_gpu exp=$exp_dir rest=$*"'):
    return run_bash(PRELUDE + f"set -- {args}\n. {REPO}/utils/parse_options.sh\n" + body)


def test_declared_options_are_set_dash_and_underscore_alike():
    r = parse("--stage 2 --stop-stage 3 --nj=8 --use_gpu true --exp-dir 'exp/a b' pos1 pos2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "stage=2 stop_stage=3 nj=8 gpu=true exp=exp/a b rest=pos1 pos2"
    r = parse("--stop_stage 5")
    assert "stop_stage=5" in r.stdout


def test_unknown_option_is_an_error():
    r = parse("--stage 1 --no_such_option 3")
    assert r.returncode != 0
    assert "unknown option --no_such_option" in r.stderr
    assert r.stdout == ""


def test_missing_value_and_boolean_check():
    r = parse("--stage")
    assert r.returncode != 0 and "needs a value" in r.stderr
    r = parse("--use_gpu yes")
    assert r.returncode != 0 and "expects true or false" in r.stderr


def test_config_file_is_sourced_in_order(tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text("nj=16\nstop_stage=2\n")
    r = parse(f"--config {conf} --stop_stage 4")
    assert r.returncode == 0, r.stderr
    assert "stop_stage=4 nj=16" in r.stdout
    r = parse(f"--config {tmp_path}/missing.conf")
    assert r.returncode != 0 and "missing.conf" in r.stderr


def test_help_prints_message():
    r = run_bash(PRELUDE + f'help_message="Usage: demo"\nset -- --help\n. {REPO}/utils/parse_options.sh\necho unreachable')
    assert r.returncode == 0 and r.stdout.strip() == "Usage: demo"


STAGES = """
if stage_begin 1 "first"; then echo ran1; stage_end; fi
stage_not_built 2 "features"
if stage_begin 3 "third"; then echo ran3; stage_end; fi
echo finished
"""


def test_unbuilt_stage_is_skipped_by_default_and_fails_when_asked_for():
    r = parse("", STAGES)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ran1", "ran3", "finished"]
    assert "stage 2: features is not built yet: skipped" in r.stderr
    assert "===== stage 1: first done in " in r.stderr
    r = parse("--stage 2", STAGES)
    assert r.returncode != 0
    assert "stage 2 (features) is not built yet" in r.stderr
    r = parse("--stage 3", STAGES)  # an explicit range that leaves the stage out is fine
    assert r.returncode == 0 and r.stdout.split() == ["ran3", "finished"]


def test_log_lines_are_timestamped():
    r = parse("", 'log "hello"')
    assert r.returncode == 0
    date, time, *_ = r.stderr.split()
    assert len(date) == 10 and date[4] == "-" and len(time) == 8 and time[2] == ":"
    assert r.stderr.rstrip().endswith("hello")


def test_already_done_marker(tmp_path):
    body = f"""
if already_done {tmp_path}/m "sig A"; then echo skip; else echo work; mark_done {tmp_path}/m "sig A"; fi
if already_done {tmp_path}/m "sig A"; then echo skip; else echo work; fi
if already_done {tmp_path}/m "sig B"; then echo skip; else echo work; fi
"""
    r = parse("", body)
    assert r.stdout.split() == ["work", "skip", "work"], r.stderr
