"""Da-TACOS (egs/datacos): HDF5 performance files written with deepdish's layout (arrays as
root datasets, nested dicts as groups, strings as root attributes), metadata JSON → manifests
and the benchmark protocol, the crema import into the feature store with the datacos_pcp
front end (bad files in bad.txt), the Siamese PCP model, Lookahead, and the recipe."""
import json

import numpy as np
import pytest
import torch
import yaml

from csi.features.h5import import import_h5_features
from csi.io.h5features import H5FeatureError, keys, read_key, read_pcp, write_deepdish_like
from csi.io.manifest import read_manifest
from tests.helpers import REPO, local_module

_datacos = local_module("datacos", "datacos")  # egs/datacos/local/datacos.py
counts, index_h5, load_metadata, protocol, subset_records = (_datacos.counts, _datacos.index_h5, _datacos.load_metadata,
                                                             _datacos.protocol, _datacos.subset_records)

BENCH_META = "da-tacos_benchmark_subset_metadata.json"
TRAIN_META = "da-tacos_coveranalysis_subset_metadata.json"


def _perf(rng, template, work, perf, tags=False):
    frames = len(template) + int(rng.integers(-10, 10))
    idx = np.clip(np.linspace(0, len(template) - 1, frames).round().astype(int), 0, len(template) - 1)
    crema = np.clip(template[idx] + rng.normal(0, 0.05, (frames, 12)), 0, 1).astype(np.float32)
    d = {"chroma_cens": rng.random((frames * 2, 12)).astype(np.float32), "crema": crema,
         "hpcp": rng.random((frames * 2, 12)).astype(np.float32),
         "key_extractor": {"key": "C", "scale": "major", "strength": 0.7},
         "madmom_features": {"novfn": rng.random(50).astype(np.float32), "onsets": rng.random(9).astype(np.float32),
                             "snovfn": rng.random(50).astype(np.float32), "tempos": rng.random((3, 2))},
         "mfcc_htk": rng.random((13, frames)).astype(np.float32), "label": work, "track_id": perf}
    if tags:
        d["tags"] = np.array([b"rock", b"live"])
    return d


def make_datacos(root, n_works=3, per_work=4, noise=4, train_works=6, frames=120, seed=0):
    """A small Da-TACOS tree: benchmark (n_works × per_work + noise singles) and
    coveranalysis (train_works × 2), single-files bundles, metadata JSON."""
    rng = np.random.default_rng(seed)
    meta_dir = root / "da-tacos_metadata"
    meta_dir.mkdir(parents=True)
    pid = 1000
    for subset, works, tags in (("benchmark", [per_work] * n_works + [1] * noise, False),
                                ("coveranalysis", [2] * train_works, True)):
        meta = {}
        for w, size in enumerate(works):
            work = f"W_{subset[0]}{w}"
            template = rng.random((frames, 12))
            meta[work] = {}
            for _ in range(size):
                perf = f"P_{pid}"
                pid += 1
                meta[work][perf] = {"work_title": f"work {w}", "work_artist": "a", "perf_title": perf,
                                    "perf_artist": "b", "release_year": "1999", "work_id": work, "perf_id": perf,
                                    "instrumental": "No"}
                write_deepdish_like(root / f"da-tacos_{subset}_subset_single_files" / work / f"{perf}.h5",
                                    _perf(rng, template, work, perf, tags))
        name = BENCH_META if subset == "benchmark" else TRAIN_META
        (meta_dir / name).write_text(json.dumps(meta))
    return root


def test_reader_follows_the_deepdish_layout(tmp_path):
    path = tmp_path / "P_1.h5"
    rng = np.random.default_rng(0)
    write_deepdish_like(path, _perf(rng, rng.random((50, 12)), "W_1", "P_1"))
    assert {"crema", "hpcp", "chroma_cens", "mfcc_htk", "key_extractor", "madmom_features", "label",
            "track_id"} <= set(keys(path))
    assert read_key(path, "label") == "W_1" and read_key(path, "track_id") == "P_1"
    pcp = read_pcp(path, "crema")
    assert pcp.dtype == np.float32 and pcp.ndim == 2 and pcp.shape[1] == 12
    with pytest.raises(H5FeatureError, match="no key 'cens'.*crema"):
        read_key(path, "cens")
    with pytest.raises(H5FeatureError, match="group"):
        read_key(path, "madmom_features")
    with pytest.raises(H5FeatureError, match=r"shape \(13, \d+\), expected \(frames, 12\)"):
        read_pcp(path, "mfcc_htk")
    with pytest.raises(H5FeatureError, match="file not found"):
        read_pcp(tmp_path / "none.h5")


def test_manifests_and_protocol_counts(tmp_path):
    root = make_datacos(tmp_path / "datacos")
    meta = load_metadata(root / "da-tacos_metadata" / BENCH_META)
    assert counts(meta) == {"works": 7, "performances": 16, "multi_version_works": 3, "single_version_works": 4,
                            "queries": 12}
    records, missing = subset_records(meta, index_h5(root / "da-tacos_benchmark_subset_single_files"))
    queries, refs = protocol(records)
    assert not missing and len(refs) == 16 and len(queries) == 12
    assert all(not r["noise"] for r in queries) and sum(r["noise"] for r in refs) == 4
    # the real proportions: 1,000 works x 13 + 2,000 single-version works
    real = {f"W_{w}": {f"P_{w}_{k}": {} for k in range(13 if w < 1000 else 1)} for w in range(3000)}
    c = counts(real)
    assert (c["performances"], c["queries"], c["single_version_works"]) == (15000, 13000, 2000)
    # per-feature archive names (da-tacos_<subset>_subset_crema/W_<id>_crema/P_<id>_crema.h5) are found too
    for f in ("crema", "hpcp", "cens"):
        (tmp_path / "arch" / f"W_1_{f}").mkdir(parents=True)
        (tmp_path / "arch" / f"W_1_{f}" / f"P_7_{f}.h5").write_bytes(b"")
    assert index_h5(tmp_path / "arch", "crema") == {"P_7": tmp_path / "arch" / "W_1_crema" / "P_7_crema.h5"}
    assert index_h5(tmp_path / "arch", "chroma_cens") == {"P_7": tmp_path / "arch" / "W_1_cens" / "P_7_cens.h5"}


def test_import_leaves_bad_files_out(tmp_path):
    root = make_datacos(tmp_path / "datacos", n_works=2, per_work=3, noise=1, train_works=1)
    tree = root / "da-tacos_benchmark_subset_single_files"
    records, _ = subset_records(load_metadata(root / "da-tacos_metadata" / BENCH_META), index_h5(tree))
    no_key, bad_shape = records[0], records[1]
    write_deepdish_like(no_key["h5"], {"hpcp": np.ones((30, 12), np.float32), "label": no_key["song"]})
    write_deepdish_like(bad_shape["h5"], {"crema": np.ones((30, 24), np.float32), "label": bad_shape["song"]})
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = import_h5_features(data, key="crema", log=lambda m: None)
    assert (summary.recordings, summary.bad, summary.utts) == (7, 2, 5)
    bad = dict(line.split("\t")[0::2] for line in (data / "bad.txt").read_text().splitlines())
    assert "no key 'crema'" in bad[no_key["utt"]] and "shape (30, 24)" in bad[bad_shape["utt"]]
    full = read_manifest(data / "full.txt", required=("utt", "song", "feat", "feat_len", "song_id"))
    assert len(full) == 5 and all(np.load(r["feat"]).shape == (r["feat_len"], 12) for r in full)
    fp = json.loads((data / "pcp_feat" / "fingerprint.json").read_text())
    assert fp["frontend"]["name"] == "datacos_pcp" and fp["frontend"]["source"] == "crema"
    # a second run reuses everything; another key is refused by the store
    assert import_h5_features(data, key="crema", log=lambda m: None).computed == 0
    from csi.features.store import FeatureStoreError
    with pytest.raises(FeatureStoreError, match="hpcp"):
        import_h5_features(data, key="hpcp", log=lambda m: None)


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

    root = make_datacos(tmp_path / "datacos", n_works=3, per_work=3, noise=2, train_works=6)
    data = {}
    for subset, meta in (("benchmark", BENCH_META), ("coveranalysis", TRAIN_META)):
        records, _ = subset_records(load_metadata(root / "da-tacos_metadata" / meta),
                                    index_h5(root / f"da-tacos_{subset}_subset_single_files"))
        d = data[subset] = tmp_path / subset
        d.mkdir()
        (d / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
        import_h5_features(d, log=lambda m: None)
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


RUN = str(REPO / "egs" / "datacos" / "run.sh")


def test_recipe_needs_datacos_dir(tmp_path):
    from tests.helpers import run_bash

    r = run_bash([RUN, "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and "--datacos_dir" in r.stderr
    r = run_bash([RUN, "--datacos_dir", str(tmp_path / "none"), "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_recipe_feature_route_end_to_end(tmp_path):
    from tests.helpers import run_bash

    root = make_datacos(tmp_path / "datacos", n_works=3, per_work=3, noise=2, train_works=6)
    # one benchmark file without crema: left out, listed in bad.txt
    bad = next((root / "da-tacos_benchmark_subset_single_files").rglob("P_*.h5"))
    write_deepdish_like(bad, {"hpcp": np.ones((30, 12), np.float32), "label": bad.parent.name})
    hp = yaml.safe_load((REPO / "conf" / "train" / "datacos_siamese.yaml").read_text())
    hp.update({"chunk_frame": [100], "mean_size": 1, "batch_size": 8, "max_epochs": 2, "max_minutes": None, "device": "cpu",
               "frames": 64, "channels": [4, 8], "embed_dim": 16})
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump(hp))
    data, exp = tmp_path / "data", tmp_path / "exp"
    r = run_bash([RUN, "--datacos_dir", str(root), "--data", str(data), "--exp", str(exp), "--train_config", str(conf)],
                 timeout=600)
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
    from tests.helpers import run_bash
    from tools import extract_csi_features, train

    rng = np.random.default_rng(1)
    root = make_datacos(tmp_path / "datacos", n_works=3, per_work=3, noise=2, train_works=2)
    meta = load_metadata(root / "da-tacos_metadata" / BENCH_META)
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


def test_per_feature_archives_are_read(tmp_path):
    """The per-feature archives (da-tacos_<subset>_subset_crema/W_<id>_crema/P_<id>_crema.h5
    holding crema, label and track_id) give the same manifests as the single-files bundles."""
    import shutil
    from tests.helpers import run_bash

    root = make_datacos(tmp_path / "datacos", n_works=2, per_work=2, noise=1, train_works=2)
    for subset in ("benchmark", "coveranalysis"):
        single = root / f"da-tacos_{subset}_subset_single_files"
        for h5 in sorted(single.rglob("P_*.h5")):
            out = root / f"da-tacos_{subset}_subset_crema" / f"{h5.parent.name}_crema" / f"{h5.stem}_crema.h5"
            write_deepdish_like(out, {"crema": read_pcp(h5), "label": h5.parent.name, "track_id": h5.stem})
        shutil.rmtree(single)
    data = tmp_path / "data"
    r = run_bash([RUN, "--datacos_dir", str(root), "--data", str(data), "--stop_stage", "2"], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((data / "benchmark" / "counts.json").read_text())["with_h5"] == 5
    assert len(read_manifest(data / "benchmark" / "feat_ref.txt", required=("utt", "feat"))) == 5
    assert len(read_manifest(data / "coveranalysis" / "full.txt", required=("utt", "feat"))) == 4
