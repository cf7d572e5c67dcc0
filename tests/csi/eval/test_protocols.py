"""The two covers80 protocols of tools.eval_testset: all-vs-all (CoverHunter's figure: every
recording queries all the others) and query-vs-reference (list1 against list2); the protocol
and its counts in metrics.json, the printed line and the table header; --protocol refuses
files that make the other one."""
import json

import pytest

from tests.fixtures.covers80 import write_feature_set
from tests.helpers import write_model_dir
from tools import eval_testset

HP = {"train_path": "unused", "chunk_frame": [30], "mean_size": 2, "m_per_class": 2, "batch_size": 4,
      "input_dim": 96, "embed_dim": 16, "encoder": {"output_dims": 16, "num_blocks": 1, "attention_dim": 32},
      "pool_type": "attention", "ce": {"output_dims": 4, "weight": 1.0, "gamma": 2},
      "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    return root, write_model_dir(root / "exp", HP), write_feature_set(root / "data", n_works=5, third_versions=1)


def run(setup, query, ref, *extra, out):
    root, exp, _ = setup
    rc = eval_testset.main([str(exp), str(query), str(ref), "--out_dir", str(root / out), "--no_progress", *extra])
    return rc, (json.loads((root / out / "metrics.json").read_text()) if rc == 0 else None), root / out


def n_relevant(out_dir):
    rows = [line.split("\t") for line in (out_dir / "per_query.tsv").read_text().splitlines()]
    col = rows[0].index("n_relevant")
    return {r[0]: int(r[col]) for r in rows[1:]}


def test_all_vs_all_every_recording_queries_the_others(setup, capsys):
    _, _, lists = setup
    rc, m, out = run(setup, lists["all"], lists["all"], "--protocol", "all_vs_all", "--baselines", "chance",
                     out="all")
    assert rc == 0
    assert m["protocol"] == "all-vs-all" and m["protocol_detail"] == "11 recordings, each queries the other 10"
    assert m["queries"] == 11 and m["references"] == 11
    relevant = n_relevant(out)        # the 3-version work's recordings each have 2 relevant, the others 1
    assert sorted(relevant.values()) == [1] * 8 + [2] * 3 and relevant["covers80-Work_0-artist2"] == 2
    printed = capsys.readouterr().out
    assert "all-vs-all (11 recordings, each queries the other 10): MAP" in printed
    header = (out / "metrics_table.txt").read_text().splitlines()[0]
    assert header.split()[:2] == ["system", "MAP"] and header.endswith("[all-vs-all: 11 recordings, each queries the other 10]")


def test_list1_against_list2(setup, capsys):
    _, _, lists = setup
    rc, m, out = run(setup, lists["list1"], lists["list2"], "--protocol", "query-vs-reference", out="lists")
    assert rc == 0
    assert m["protocol"] == "query-vs-reference" and m["protocol_detail"] == "5 queries against 5 references"
    assert m["queries"] == 5 and m["references"] == 5 and set(n_relevant(out).values()) == {1}
    assert "query-vs-reference (5 queries against 5 references): MAP" in capsys.readouterr().out
    rc, default, _ = run(setup, lists["list1"], lists["list2"], out="lists_default")   # the files say which
    assert rc == 0 and default["protocol"] == "query-vs-reference" and default["MAP"] == m["MAP"]


def test_protocol_and_files_that_disagree_are_refused(setup, capsys):
    _, _, lists = setup
    rc, _, _ = run(setup, lists["list1"], lists["list2"], "--protocol", "all-vs-all", out="bad1")
    assert rc == 1 and "all-vs-all ranks one manifest against itself" in capsys.readouterr().err
    rc, _, _ = run(setup, lists["all"], lists["all"], "--protocol", "query_vs_reference", out="bad2")
    assert rc == 1 and "which is the all-vs-all protocol" in capsys.readouterr().err
    rc, _, _ = run(setup, lists["all"], lists["all"], "--protocol", "list1_vs_list2", out="bad3")
    assert rc == 1 and "--protocol: expected all-vs-all or query-vs-reference" in capsys.readouterr().err


def test_comparison_table_names_the_protocol_and_refuses_a_mix():
    from csi.baselines.evaluate import comparison_table

    base = {"queries": 164, "references": 164, "query_path": "d.txt", "mAP": 0.5, "mean_rank1": 3.0,
            "protocol": "all-vs-all", "protocol_detail": "164 recordings, each queries the other 163"}
    table = comparison_table([("a", base), ("b", dict(base, mAP=0.6))])
    assert table.splitlines()[0] == "protocol: 164 recordings, each queries the other 163"
    with pytest.raises(ValueError, match="protocol"):
        comparison_table([("a", base), ("b", dict(base, protocol="query-vs-reference"))])
