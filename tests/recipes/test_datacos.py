"""Da-TACOS (egs/datacos) on trees in the published layout (tests/fixtures/datacos.py: the
archives' folder names, deepdish's PyTables h5 layout, the real keys, shapes and dtypes —
cover-analysis crema (12, T), benchmark crema (T, 12), every feature on one 512-sample hop):
the reader and the layout rule, manifests and protocol counts, the import (bad files in
bad.txt, the layout of each subset logged), stage 1 on archives unpacked one folder down and
without any h5 file, the Siamese PCP model, Lookahead, and the recipe."""
import json

import numpy as np
import pytest
import torch
import yaml

from csi.features.h5import import import_h5_features
from csi.io.h5features import H5FeatureError, keys, pcp_layout, read_key, read_pcp, read_pcp_layout
from csi.io.manifest import read_manifest
from tests.fixtures.datacos import HOP, SR, performance, write_datacos, write_deepdish_h5, work_template
from tests.helpers import REPO, local_module, run_bash

_datacos = local_module("datacos", "datacos")  # egs/datacos/local/datacos.py
counts, index_h5, load_metadata, protocol, subset_records = (_datacos.counts, _datacos.index_h5, _datacos.load_metadata,
                                                             _datacos.protocol, _datacos.subset_records)
RUN = str(REPO / "egs" / "datacos" / "run.sh")


def _dataset(tmp_path, tree, subset, name=None):
    """data/<subset>/dataset.txt of a fixture tree, through the recipe's own library."""
    records, _ = subset_records(load_metadata(tree["metadata"][subset]),
                                index_h5(tree["base"] / f"da-tacos_{subset}_subset_single_files"))
    d = tmp_path / (name or subset)
    d.mkdir(parents=True)
    (d / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d, records


def test_pcp_layout_rule():
    assert pcp_layout((12, 15226)) == "bins_frames"          # the cover-analysis crema of P_547131
    assert pcp_layout((15227, 12)) == "frames_bins"          # its hpcp and chroma_cens
    with pytest.raises(ValueError, match=r"both axes of size 12"):
        pcp_layout((12, 12))
    with pytest.raises(ValueError, match="no axis of size 12"):
        pcp_layout((13, 15183))                               # mfcc_htk
    with pytest.raises(ValueError, match="not 2-D"):
        pcp_layout((15227,))
    assert pcp_layout((12, 12), layout="bins_frames") == "bins_frames"
    with pytest.raises(ValueError, match=r"expected \(frames, 12\)"):
        pcp_layout((12, 300), layout="frames_bins")
    with pytest.raises(ValueError, match="layout must be"):
        pcp_layout((300, 12), layout="columns")


def test_reader_on_the_published_h5_layout(tmp_path):
    rng = np.random.default_rng(0)
    template = work_template(rng, 200)
    ca = write_deepdish_h5(tmp_path / "W_1" / "P_1.h5", performance(rng, "coveranalysis", "W_1", "P_1", template))
    bm = write_deepdish_h5(tmp_path / "W_2" / "P_2.h5", performance(rng, "benchmark", "W_2", "P_2", template))
    assert {"crema", "hpcp", "chroma_cens", "mfcc_htk", "key_extractor", "madmom_features", "label", "track_id",
            "tags"} == set(keys(ca))                          # PyTables' CLASS/TITLE/VERSION attributes are not keys
    assert "tags" not in keys(bm)                             # tags: cover-analysis only
    assert read_key(ca, "label") == "W_1" and read_key(ca, "track_id") == "P_1"
    assert read_key(ca, "crema").shape[0] == 12 and read_key(bm, "crema").shape[1] == 12
    crema, layout = read_pcp_layout(ca, "crema")
    hpcp, hpcp_layout = read_pcp_layout(ca, "hpcp")
    assert layout == "bins_frames" and hpcp_layout == "frames_bins"
    assert crema.dtype == np.float32 and crema.shape[1] == 12 and crema.flags["C_CONTIGUOUS"]
    # one hop for every feature: crema and hpcp differ by one frame, not by a factor
    assert abs(len(hpcp) - len(crema)) <= 1 and len(read_pcp(ca, "chroma_cens")) == len(hpcp)
    assert read_pcp_layout(bm, "crema")[1] == "frames_bins"
    np.testing.assert_allclose(crema, read_key(ca, "crema").T)
    with pytest.raises(H5FeatureError, match="no key 'cens'.*crema"):
        read_key(ca, "cens")
    with pytest.raises(H5FeatureError, match="group"):
        read_key(ca, "madmom_features")
    with pytest.raises(H5FeatureError, match=r"'mfcc_htk' has shape \(13, \d+\): no axis of size 12"):
        read_pcp(ca, "mfcc_htk")
    with pytest.raises(H5FeatureError, match="file not found"):
        read_pcp(tmp_path / "none.h5")
    square = write_deepdish_h5(tmp_path / "sq.h5", {"crema": np.ones((12, 12), np.float32)})
    with pytest.raises(H5FeatureError, match="both axes"):
        read_pcp(square)


def test_manifests_and_protocol_counts(tmp_path):
    tree = write_datacos(tmp_path / "datacos", bench_works=(4, 4, 4, 1, 1, 1, 1), train_works=3)
    meta = load_metadata(tree["metadata"]["benchmark"])
    assert counts(meta) == {"works": 7, "performances": 16, "multi_version_works": 3, "single_version_works": 4,
                            "queries": 12}
    records, missing = subset_records(meta, index_h5(tree["base"] / "da-tacos_benchmark_subset_single_files"))
    queries, refs = protocol(records)
    assert not missing and len(refs) == 16 and len(queries) == 12
    assert all(not r["noise"] for r in queries) and sum(r["noise"] for r in refs) == 4
    assert all(isinstance(v, (str, int, float, bool)) for r in records for v in r.values())   # mb_performances dropped
    # the real proportions: 1,000 works x 13 + 2,000 single-version works
    real = {f"W_{w}": {f"P_{w}_{k}": {} for k in range(13 if w < 1000 else 1)} for w in range(3000)}
    c = counts(real)
    assert (c["performances"], c["queries"], c["single_version_works"]) == (15000, 13000, 2000)


def test_trees_are_found_where_the_archives_were_unpacked(tmp_path):
    find_trees = _datacos.find_trees
    tree = write_datacos(tmp_path / "root", bench_works=(2, 1), train_works=1,
                         archives=("single_files", "crema", "cens"), below="downloads/da-tacos")
    found = find_trees(tmp_path / "root", "coveranalysis")
    assert [k for k, _ in found] == ["single_files", "cens", "crema"]
    assert all(p.parent == tree["base"] for _, p in found)
    assert find_trees(tmp_path / "root", "coveranalysis", max_depth=2) == []
    arch = tree["base"] / "da-tacos_benchmark_subset_cens"
    assert index_h5(arch, "chroma_cens") == {"P_100": arch / "W_10_cens" / "P_100_cens.h5",
                                             "P_101": arch / "W_10_cens" / "P_101_cens.h5",
                                             "P_102": arch / "W_11_cens" / "P_102_cens.h5"}
    assert index_h5(arch, "crema") == {}


def test_import_transposes_bins_first_and_logs_the_layout(tmp_path):
    tree = write_datacos(tmp_path / "datacos", bench_works=(3, 3, 1), train_works=3)
    logs = []
    for subset, expected in (("coveranalysis", "bins_frames"), ("benchmark", "frames_bins")):
        data, records = _dataset(tmp_path, tree, subset)
        s = import_h5_features(data, key="crema", log=logs.append)
        assert s.bad == 0 and s.utts == len(records) and s.layouts[expected] == len(records)
        assert json.loads((data / "h5_layout.json").read_text())[expected] == len(records)
        full = read_manifest(data / "full.txt", required=("utt", "feat", "feat_len"))
        for r in full:
            feat = np.load(r["feat"])
            assert feat.shape == (r["feat_len"], 12) and r["feat_len"] == tree["frames"][r["utt"]]
        # a second run reuses every file and still knows the layout
        again = import_h5_features(data, key="crema", log=logs.append)
        assert again.computed == 0 and again.layouts == s.layouts
    assert any("coveranalysis" in m and "(12, frames), bins first: transposed" in m for m in logs)
    assert any("benchmark" in m and "(frames, 12), frames first" in m for m in logs)
    # hpcp is (frames, 12) in both subsets; its frame count is crema's + 1 (one hop, acoss)
    data, _ = _dataset(tmp_path, tree, "coveranalysis", "ca_hpcp")
    s = import_h5_features(data, key="hpcp", log=lambda m: None)
    assert s.layouts == {"frames_bins": 6, "bins_frames": 0}
    full = read_manifest(data / "full.txt", required=("utt", "feat_len"))
    assert all(r["feat_len"] == tree["frames"][r["utt"]] + 1 for r in full)


def test_import_leaves_bad_files_out(tmp_path):
    tree = write_datacos(tmp_path / "datacos", bench_works=(3, 3, 1), train_works=1)
    data, records = _dataset(tmp_path, tree, "benchmark")
    no_key, bad_shape, square = records[0], records[1], records[2]
    write_deepdish_h5(no_key["h5"], {"hpcp": np.ones((30, 12), np.float32), "label": no_key["song"]})
    write_deepdish_h5(bad_shape["h5"], {"crema": np.ones((30, 24), np.float32), "label": bad_shape["song"]})
    write_deepdish_h5(square["h5"], {"crema": np.ones((12, 12), np.float32), "label": square["song"]})
    summary = import_h5_features(data, key="crema", log=lambda m: None)
    assert (summary.recordings, summary.bad, summary.utts) == (7, 3, 4)
    bad = dict(line.split("\t")[0::2] for line in (data / "bad.txt").read_text().splitlines())
    assert "no key 'crema'" in bad[no_key["utt"]] and "shape (30, 24)" in bad[bad_shape["utt"]]
    assert "both axes of size 12" in bad[square["utt"]]
    fp = json.loads((data / "pcp_feat" / "fingerprint.json").read_text())
    assert fp["frontend"]["name"] == "datacos_pcp" and fp["frontend"]["source"] == "crema"
    assert fp["frontend"]["sr"] == SR and fp["frontend"]["hop_length"] == HOP
    from csi.features.store import FeatureStoreError
    with pytest.raises(FeatureStoreError, match="hpcp"):
        import_h5_features(data, key="hpcp", log=lambda m: None)


def _prepare(*args):
    return run_bash(["-c", f'PYTHONPATH="{REPO}" python3 "{REPO}/egs/datacos/local/prepare_datacos.py" ' +
                     " ".join(f"'{a}'" for a in args)])


def test_stage1_on_archives_unpacked_one_folder_down(tmp_path):
    tree = write_datacos(tmp_path / "dl", bench_works=(2, 2, 1), train_works=2, below="da-tacos")
    r = _prepare(tmp_path / "dl", tmp_path / "data")
    assert r.returncode == 0, r.stderr
    c = json.loads((tmp_path / "data" / "coveranalysis" / "counts.json").read_text())
    assert c["with_h5"] == 4 and c["missing"] == 0
    assert json.loads((tmp_path / "data" / "benchmark" / "counts.json").read_text())["with_h5"] == 5
    assert f"h5 files from {tree['base'] / 'da-tacos_benchmark_subset_single_files'} (single_files)" in r.stderr


def test_stage1_stops_when_a_subset_has_no_file(tmp_path):
    import shutil

    tree = write_datacos(tmp_path / "d", bench_works=(2, 1), train_works=2, archives=("single_files", "crema"))
    shutil.rmtree(tree["base"] / "da-tacos_coveranalysis_subset_single_files")
    shutil.rmtree(tree["base"] / "da-tacos_coveranalysis_subset_crema")
    r = _prepare(tmp_path / "d", tmp_path / "data")
    assert r.returncode == 1
    assert "coveranalysis: no file for any of the 4 performances" in r.stderr
    assert "da-tacos_coveranalysis_subset_single_files.zip" in r.stderr
    # the benchmark has only the crema archive left: asking for hpcp names what is there
    shutil.rmtree(tree["base"] / "da-tacos_benchmark_subset_single_files")
    r = _prepare(tmp_path / "d", tmp_path / "data2", "--feature", "hpcp")
    assert r.returncode == 1 and "holding 'hpcp'" in r.stderr and "da-tacos_benchmark_subset_crema (crema)" in r.stderr
    # with --audio_dir (the audio route) a subset without files is skipped, not an error
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "P_100.wav").write_bytes(b"")
    r = _prepare(tmp_path / "d", tmp_path / "data3", "--feature", "hpcp", "--audio_dir", audio)
    assert r.returncode == 0, r.stderr
    assert "coveranalysis: no file" in r.stderr and "subset skipped (--audio_dir given)" in r.stderr
    assert json.loads((tmp_path / "data3" / "benchmark" / "counts.json").read_text())["with_audio"] == 1


def test_recipe_stages_1_2_default_route(tmp_path):
    """The default route (--feature crema) on the published layout: stage 2 imports every
    cover-analysis file (crema stored (12, T)) and every benchmark file ((T, 12))."""
    write_datacos(tmp_path / "datacos", bench_works=(3, 3, 1, 1), train_works=6)
    data = tmp_path / "data"
    r = run_bash([RUN, "--datacos_dir", str(tmp_path / "datacos"), "--data", str(data), "--stop_stage", "2"], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(read_manifest(data / "coveranalysis" / "full.txt", required=("utt", "feat"))) == 12
    assert (data / "coveranalysis" / "bad.txt").read_text() == "" and (data / "benchmark" / "bad.txt").read_text() == ""
    assert json.loads((data / "coveranalysis" / "h5_layout.json").read_text())["bins_frames"] == 12
    assert json.loads((data / "benchmark" / "h5_layout.json").read_text())["frames_bins"] == 8
    assert "12 file(s) (12, frames), bins first: transposed" in r.stderr
    assert len(read_manifest(data / "benchmark" / "feat_query.txt", required=("utt", "feat"))) == 6


def test_per_feature_archives_are_read(tmp_path):
    """The per-feature archives alone (da-tacos_<subset>_subset_<f>/W_<id>_<f>/P_<id>_<f>.h5,
    each with its key, label and track_id) for --feature crema and chroma_cens (archive cens)."""
    write_datacos(tmp_path / "datacos", bench_works=(2, 2, 1), train_works=2, archives=("crema", "cens", "key"))
    for feature in ("crema", "chroma_cens"):
        data = tmp_path / f"data_{feature}"
        r = run_bash([RUN, "--datacos_dir", str(tmp_path / "datacos"), "--data", str(data), "--stop_stage", "2",
                      "--feature", feature], timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert json.loads((data / "benchmark" / "counts.json").read_text())["with_h5"] == 5
        assert len(read_manifest(data / "benchmark" / "feat_ref.txt", required=("utt", "feat"))) == 5
        assert len(read_manifest(data / "coveranalysis" / "full.txt", required=("utt", "feat"))) == 4
        assert all(f"_{'cens' if feature == 'chroma_cens' else feature}.h5" in rec["h5"]
                   for rec in read_manifest(data / "coveranalysis" / "dataset.txt", required=("h5",)))


def test_pcp_front_end_refuses_audio():
    from csi.features.frontend import resolve_frontend
    from csi.registry import ConfigError

    fe = resolve_frontend({"name": "datacos_pcp", "source": "hpcp"})
    assert fe.n_bins == 12 and fe.pad_value == 0.0 and fe.frames_per_s == pytest.approx(44100 / 512)
    with pytest.raises(ConfigError, match="does not compute them from audio"):
        fe.build()(torch.zeros(1000))


def test_lookahead_steps_and_resumes():
    from csi.train.optim import Lookahead, build_optimizer

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = build_optimizer([w], {"name": "adam", "lookahead": {"k": 2, "alpha": 0.5}}, 0.1, (0.9, 0.99), 0.0)
    assert isinstance(opt, Lookahead) and isinstance(opt.inner, torch.optim.Adam)
    for _ in range(2):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    # after k=2 fast steps of Adam (about -0.1 each), the weights are halfway back: 1 - 0.1
    assert torch.allclose(w.detach(), torch.full((3,), 0.9), atol=1e-3)
    state = opt.state_dict()
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = build_optimizer([w2], {"name": "adam", "lookahead": {"k": 2, "alpha": 0.5}}, 0.1, (0.9, 0.99), 0.0)
    opt2.load_state_dict(state)
    assert opt2.lookahead_steps == 2 and torch.equal(opt2.slow[0][0], opt.slow[0][0])
    assert isinstance(build_optimizer([w], None, 0.1, (0.9, 0.99), 0.01), torch.optim.AdamW)


def test_siamese_trains_and_evaluates(tmp_path):
    from tools import eval_testset, train

    tree = write_datacos(tmp_path / "datacos", bench_works=(3, 3, 3, 1, 1), train_works=6)
    data = {}
    for subset in ("benchmark", "coveranalysis"):
        data[subset], _ = _dataset(tmp_path, tree, subset)
        import_h5_features(data[subset], log=lambda m: None)
    exp = tmp_path / "exp"
    (exp / "config").mkdir(parents=True)
    hp = yaml.safe_load((REPO / "conf" / "train" / "datacos_siamese.yaml").read_text())
    hp.update({"train_path": str(data["coveranalysis"] / "full.txt"), "chunk_frame": [100], "mean_size": 1, "batch_size": 8,
               "m_per_class": 2, "max_epochs": 2, "max_minutes": None, "device": "cpu", "frames": 64,
               "channels": [4, 8], "embed_dim": 16})
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    assert train.main([str(exp)]) == 0
    # resumes with the Lookahead state (slow weights, step count) from the last checkpoint
    hp["max_epochs"] = 3
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    assert train.main([str(exp)]) == 0
    assert (exp / "pt_model" / "g_00000002").is_file()
    card = yaml.safe_load((exp / "config" / "model_card.yaml").read_text())
    assert card["model"] == "siamese_pcp" and card["frontend"]["name"] == "datacos_pcp"
    assert card["frontend"]["params"]["source"] == "crema" and card["input_dim"] == 12
    out = tmp_path / "eval"
    bench = data["benchmark"]
    queries, refs = protocol(read_manifest(bench / "full.txt", required=("utt", "song", "feat")))
    for name, recs in (("q.txt", queries), ("r.txt", refs)):
        (bench / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert eval_testset.main([str(exp), str(bench / "q.txt"), str(bench / "r.txt"), "--out_dir", str(out),
                              "--device", "cpu", "--no_progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["failed"] == 0 and 0 < metrics["MAP"] <= 1 and metrics["frontend"] == "datacos_pcp"


def test_recipe_needs_datacos_dir(tmp_path):
    r = run_bash([RUN, "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and "--datacos_dir" in r.stderr
    r = run_bash([RUN, "--datacos_dir", str(tmp_path / "none"), "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_recipe_feature_route_end_to_end(tmp_path):
    tree = write_datacos(tmp_path / "datacos", bench_works=(3, 3, 3, 1, 1), train_works=6)
    # one benchmark file without crema: left out, listed in bad.txt
    work, perf = tree["perfs"]["benchmark"][0]
    bad = tree["base"] / "da-tacos_benchmark_subset_single_files" / work / f"{perf}.h5"
    write_deepdish_h5(bad, {"hpcp": np.ones((30, 12), np.float32), "label": work, "track_id": perf})
    hp = yaml.safe_load((REPO / "conf" / "train" / "datacos_siamese.yaml").read_text())
    hp.update({"chunk_frame": [100], "mean_size": 1, "batch_size": 8, "max_epochs": 2, "max_minutes": None, "device": "cpu",
               "frames": 64, "channels": [4, 8], "embed_dim": 16})
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump(hp))
    data, exp = tmp_path / "data", tmp_path / "exp"
    r = run_bash([RUN, "--datacos_dir", str(tree["root"]), "--data", str(data), "--exp", str(exp), "--train_config",
                  str(conf)], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    c = json.loads((data / "benchmark" / "counts.json").read_text())
    assert (c["query"], c["ref"], c["performances"]) == (9, 11, 11)
    assert len((data / "benchmark" / "bad.txt").read_text().splitlines()) == 1
    assert len(read_manifest(data / "benchmark" / "feat_ref.txt", required=("utt", "feat"))) == 10
    assert len(read_manifest(data / "coveranalysis" / "full.txt", required=("utt", "feat"))) == 12
    dev = read_manifest(data / "coveranalysis" / "dev.txt", required=("utt", "feat"))
    train = read_manifest(data / "coveranalysis" / "train.txt", required=("utt", "feat"))
    assert len({r["song"] for r in dev}) == 2 and len(dev) + len(train) == 12
    assert not {r["song"] for r in dev} & {r["song"] for r in train}
    assert (exp / "pt_model" / "g_best").is_file()
    metrics = json.loads((exp / "eval_benchmark" / "metrics.json").read_text())
    assert metrics["frontend"] == "datacos_pcp" and metrics["failed"] == 0 and 0 < metrics["MAP"] <= 1
    assert "stage 4" in r.stderr and "not built" in r.stderr


def _acoss_style_map(dist, labels, queries):
    """MAP as acoss computes it on Da-TACOS, written out: each query ranks every other
    performance (itself removed) by distance; AP = mean of the precision at each relevant."""
    aps = []
    for q in queries:
        others = [j for j in range(len(labels)) if j != q]
        order = sorted(others, key=lambda j: dist[q, j])
        hits, precisions = 0, []
        for rank, j in enumerate(order, 1):
            if labels[j] == labels[q]:
                hits += 1
                precisions.append(hits / rank)
        aps.append(np.mean(precisions))
    return float(np.mean(aps))


def test_metrics_follow_acoss_on_the_benchmark_protocol():
    """csi.scoring.metrics with the benchmark protocol (multi-version performances as queries,
    every performance as reference, the query's own entry excluded) equals acoss's MAP."""
    from csi.scoring.metrics import retrieval_metrics, same_source_pairs

    rng = np.random.default_rng(3)
    labels = [f"W_{w}" for w in range(6) for _ in range(4)] + [f"W_n{k}" for k in range(5)]
    utts = [f"P_{i}" for i in range(len(labels))]
    queries = [i for i, w in enumerate(labels) if not w.startswith("W_n")]
    dist = rng.random((len(labels), len(labels)))
    res = retrieval_metrics(dist[queries], [labels[i] for i in queries], labels,
                            exclude=same_source_pairs([utts[i] for i in queries], utts))
    assert res.metrics["queries"] == 24 and res.metrics["references"] == 29
    assert res.metrics["MAP"] == pytest.approx(_acoss_style_map(dist, labels, queries), abs=1e-9)


def test_pitch_cnn_reads_the_pcp():
    from csi.models import MODELS
    from csi.train.config import parse_hparams
    from csi.models import model_section

    hp = yaml.safe_load((REPO / "conf" / "train" / "datacos_pcp.yaml").read_text())
    model = model_section(hp)
    model["ce"] = dict(model["ce"], output_dims=5)
    m = MODELS.build({"name": model.pop("model"), **model})
    loss, parts = m.compute_loss(torch.rand(8, 100, 12), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert torch.isfinite(loss) and m(torch.rand(2, 100, 12)).shape == (2, 128)
    parse_hparams(hp)


def _chord_audio(path, freqs, seconds, rng, sr=16000):
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t + rng.random() * 6) for f in freqs) / len(freqs)
    y = 0.5 * y + 0.02 * rng.normal(size=len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y.astype(np.float32), sr)


def test_recipe_audio_route(tmp_path):
    """Audio of the benchmark performances (<P_id>.wav) matched with a model on CQT features
    (stage 1 --audio_dir, stage 6 --audio_model); a performance without audio is left out."""
    from tools import extract_csi_features, train

    rng = np.random.default_rng(1)
    tree = write_datacos(tmp_path / "datacos", bench_works=(3, 3, 3, 1, 1), train_works=2)
    root = tree["root"]
    meta = load_metadata(tree["metadata"]["benchmark"])
    audio = tmp_path / "audio"
    chords = {w: rng.uniform(200, 1500, 3) for w in meta}
    perfs = [(w, p) for w in sorted(meta) for p in sorted(meta[w])]
    for w, p in perfs[1:]:                                  # the first performance has no audio
        _chord_audio(audio / f"{p}.wav", chords[w] * rng.choice([1.0, 1.06]), 3.0, rng)
    # a small CQT model trained on other works
    train_dir = tmp_path / "cqt_train"
    lines = []
    for w in range(4):
        freqs = rng.uniform(200, 1500, 3)
        for v in range(2):
            wav = train_dir / "audio" / f"w{w}v{v}.wav"
            _chord_audio(wav, freqs, 3.0, rng)
            lines.append({"utt": f"w{w}v{v}", "wav": str(wav), "song": f"w{w}"})
    (train_dir / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (train_dir / "hparams.yaml").write_text(yaml.safe_dump({"min_dur_s": 1.0, "device": "cpu"}))
    assert extract_csi_features.main([str(train_dir), "--no_progress"]) == 0
    model = tmp_path / "cqt_model"
    (model / "config").mkdir(parents=True)
    (model / "config" / "hparams.yaml").write_text(yaml.safe_dump({
        "model": "pitch_cnn", "train_path": str(train_dir / "full.txt"), "chunk_frame": [50], "mean_size": 1,
        "m_per_class": 2, "batch_size": 8, "num_workers": 0, "max_epochs": 1, "device": "cpu", "input_dim": 96,
        "embed_dim": 16, "channels": [4], "time_pool": [2], "pool_type": "attention",
        "ce": {"output_dims": "auto"}}))
    assert train.main([str(model)]) == 0

    data = tmp_path / "data"
    r = run_bash([RUN, "--datacos_dir", str(root), "--data", str(data), "--stage", "1", "--stop_stage", "1",
                  "--audio_dir", str(audio)])
    assert r.returncode == 0, r.stderr[-3000:]
    c = json.loads((data / "benchmark" / "counts.json").read_text())
    assert c["with_audio"] == 10 and c["audio_ref"] == 10 and c["audio_query"] == 8
    r = run_bash([RUN, "--datacos_dir", str(root), "--data", str(data), "--stage", "6", "--stop_stage", "6",
                  "--audio_model", str(model), "--exp", str(tmp_path / "no_pcp_model")], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((model / "eval_datacos_audio" / "metrics.json").read_text())
    assert metrics["frontend"] == "coverhunter_cqt" and metrics["failed"] == 0 and metrics["queries"] == 8
