"""Neural audio fingerprinting: front end, model, training with resume, the database and
identification of a noisy snippet planted in it, refusal of another model's database."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofp.frontend import LogMel, MelConfig
from audiofp.model import build_fingerprinter
from csi.registry import ConfigError

SR = 8000
TINY = {"name": "nafp_cnn", "channels": [4, 8, 8], "dim": 16, "hidden_per_dim": 4}


def _recording(seed: int, seconds: float = 12.0) -> np.ndarray:
    """Notes of random pitch and length with a little noise: distinct recordings."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.0
    while t < seconds:
        dur = rng.uniform(0.15, 0.5)
        n = int(dur * SR)
        f = rng.uniform(200, 2000)
        out.append(np.sin(2 * np.pi * f * np.arange(n) / SR) * np.hanning(n) * rng.uniform(0.2, 0.6))
        t += dur
    y = np.concatenate(out)[:int(seconds * SR)]
    return (y + rng.normal(0, 0.01, len(y))).astype(np.float32)


def test_log_mel_shape_and_level_invariance():
    mel = LogMel()
    x = torch.from_numpy(np.stack([_recording(1)[:SR], _recording(2)[:SR]]))
    out = mel(x)
    assert out.shape == (2, 256, 32) and MelConfig().frames == 32
    assert torch.allclose(out.amax(dim=(1, 2)), torch.zeros(2))
    assert torch.allclose(mel(0.1 * x), out, atol=1e-3)                  # volume does not matter


def test_model_gives_unit_fingerprints_and_refuses_unknown_names():
    net = build_fingerprinter({**TINY, "n_mels": 256, "frames": 32})
    emb = net(torch.randn(3, 256, 32))
    assert emb.shape == (3, 16) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    with pytest.raises(ConfigError, match="unknown fingerprinter"):
        build_fingerprinter({"name": "nope"})


def test_lamb_minimises_and_scales_by_trust_ratio():
    from audiofp.lamb import Lamb

    w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
    opt = Lamb([w], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        (w ** 2).sum().backward()
        opt.step()
    assert w.norm() < 0.3


class _Pairs(torch.utils.data.Dataset):
    """1-s segments of the recordings and a noisy, shifted copy (a stand-in for the
    augmentation chain, enough to train and test the trainer)."""

    def __init__(self, recordings, n, seed):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            y = recordings[rng.integers(len(recordings))]
            s = int(rng.integers(0, len(y) - 2 * SR))
            shift = int(rng.integers(-400, 400))
            pos = y[s + 800 + shift:s + 800 + shift + SR] + rng.normal(0, 0.05, SR).astype(np.float32)
            self.items.append((torch.from_numpy(y[s + 800:s + 800 + SR]), torch.from_numpy(pos)))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from audiofp.train import FingerprintConfig, Trainer, TrainSettings

    root = tmp_path_factory.mktemp("fp")
    recs = [_recording(s) for s in range(6)]
    cfg = FingerprintConfig(model=dict(TINY), train=TrainSettings(epochs=3, batch_size=8, learning_rate=3e-3))
    summary = Trainer(cfg, root / "model").fit(_Pairs(recs, 48, 0), _Pairs(recs, 16, 1), progress=False)
    refs = root / "refs"
    refs.mkdir()
    for i, y in enumerate(recs[:5]):
        sf.write(refs / f"rec{i}.wav", y, SR)
    sf.write(refs / "short.wav", recs[5][:SR // 2], SR)
    return root, recs, cfg, summary


def test_training_writes_a_model_directory_and_resumes(trained):
    from audiofp.inference import load_fingerprinter
    from audiofp.train import Trainer

    root, recs, cfg, summary = trained
    model_dir = root / "model"
    assert summary["epochs"] == 3 and np.isfinite(summary["best_val_loss"])
    for name in ("config.yaml", "best.pt", "checkpoints/last.pt", "history.json", "learning_curve.png"):
        assert (model_dir / name).exists(), name
    history = json.loads((model_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3] and all(h["steps"] == 6 for h in history)
    cfg.train.epochs = 4                                   # resume: one more epoch, not four
    more = Trainer(cfg, model_dir).fit(_Pairs(recs, 48, 0), _Pairs(recs, 16, 1), progress=False)
    assert more["epochs"] == 4 and len(json.loads((model_dir / "history.json").read_text())) == 4
    loaded = load_fingerprinter(model_dir)
    assert loaded.identity["embed_dim"] == 16 and loaded.mel.sr == SR
    other = dict(TINY, dim=8)
    from audiofp.train import FingerprintConfig
    with pytest.raises(ConfigError, match="another model"):
        Trainer(FingerprintConfig(model=other), model_dir).write_config()


def test_database_identifies_a_planted_noisy_snippet(trained, tmp_path, capsys):
    from tools import create_faiss_indexes, generate_fingerprints, identify_fingerprint

    root, recs, _, _ = trained
    fp = tmp_path / "fp"
    assert generate_fingerprints.main([str(root / "model"), str(root / "refs"), "--out_dir", str(fp),
                                       "--no_progress", "--device", "cpu"]) == 0
    assert "short" in (fp / "skipped.txt").read_text()
    db = tmp_path / "db"
    assert create_faiss_indexes.main(["--input", str(fp), "--name", "refs", "--out_dir", str(db), "--type", "flat"]) == 0
    ids = json.loads((db / "refs.json").read_text())
    assert ids["hop_s"] == 0.5 and ids["ids"][1] == ["rec0", 0.5] and len(ids["ids"]) == 5 * 23
    rng = np.random.default_rng(3)
    snippet = recs[3][int(6.5 * SR):int(9.5 * SR)]
    snippet = snippet + rng.normal(0, np.sqrt(np.mean(snippet ** 2) / 100), len(snippet)).astype(np.float32)  # 20 dB
    sf.write(tmp_path / "q.wav", snippet, SR)
    capsys.readouterr()
    assert identify_fingerprint.main([str(db), str(tmp_path / "q.wav"), "--json", "--device", "cpu"]) == 0
    answer = json.loads(capsys.readouterr().out)["answers"][0]
    assert answer["recording"] == "rec3" and abs(answer["offset_s"] - 6.5) <= 0.15 and answer["score"] > 0.2
    assert identify_fingerprint.main([str(db), str(tmp_path / "q.wav"), "--json", "--verify", "0"]) == 0   # votes only
    answer = json.loads(capsys.readouterr().out)["answers"][0]
    assert answer["recording"] == "rec3" and abs(answer["offset_s"] - 6.5) <= 0.15

    # a database built by another fingerprinter is refused
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.yaml", "best.pt"):
        (other / name).write_bytes((root / "model" / name).read_bytes())
    state = torch.load(other / "best.pt", weights_only=False)
    state["model"] = {k: v + 0.01 for k, v in state["model"].items()}
    torch.save(state, other / "best.pt")
    capsys.readouterr()
    assert identify_fingerprint.main([str(db), str(tmp_path / "q.wav"), "--model_dir", str(other)]) == 1
    assert "another fingerprinter" in capsys.readouterr().err



def test_sharded_fingerprints_give_the_one_job_database(trained, tmp_path, capsys):
    """Two --shard jobs and --merge: the same database as one job; a missing part and a part
    made by another fingerprinter are refused by name."""
    import faiss
    import shutil

    from csi.index import ChunkIndex
    from tools import create_faiss_indexes, generate_fingerprints

    root, _, _, _ = trained
    model, refs = str(root / "model"), str(root / "refs")
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    assert generate_fingerprints.main([model, refs, "--out_dir", str(one), "--no_progress"]) == 0
    for k in (1, 2):
        assert generate_fingerprints.main([model, refs, "--out_dir", str(sharded), "--no_progress",
                                           "--shard", f"{k}/2"]) == 0
    assert not (sharded / "fingerprints.jsonl").exists()
    assert generate_fingerprints.main([model, refs, "--out_dir", str(sharded), "--merge", "2"]) == 0
    assert (sharded / "skipped.txt").read_text() == (one / "skipped.txt").read_text()
    dbs = []
    for fp in (one, sharded):
        assert create_faiss_indexes.main(["--input", str(fp), "--name", "refs", "--out_dir", str(fp / "db")]) == 0
        dbs.append(ChunkIndex.load(fp / "db"))
        assert (fp / "db" / "refs.json").read_text() == (one / "db" / "refs.json").read_text()
    assert dbs[0].recordings == dbs[1].recordings
    assert faiss.serialize_index(dbs[0].index).tobytes() == faiss.serialize_index(dbs[1].index).tobytes()

    capsys.readouterr()
    shutil.rmtree(sharded / "shards" / "part-2-of-2")
    assert generate_fingerprints.main([model, refs, "--out_dir", str(sharded), "--merge", "2"]) == 1
    assert "shard 2/2: not finished" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yaml").write_bytes((root / "model" / "config.yaml").read_bytes())
    state = torch.load(root / "model" / "best.pt", weights_only=False)
    state["model"] = {k: v + 0.01 for k, v in state["model"].items()}
    torch.save(state, other / "best.pt")
    assert generate_fingerprints.main([str(other), refs, "--out_dir", str(sharded), "--no_progress",
                                       "--shard", "2/2"]) == 0
    assert generate_fingerprints.main([model, refs, "--out_dir", str(sharded), "--merge", "2"]) == 1
    err = capsys.readouterr().err
    assert "shard 2/2" in err and "another fingerprinter" in err

def test_seed_index_parameters():
    from audiofp.database import fingerprint_params

    assert fingerprint_params(20_000, 128) == {"m": 32, "nlist": 256, "nprobe": 16}
    assert fingerprint_params(3_900, 128)["nlist"] == 100                 # 39 training vectors a list
    assert fingerprint_params(1_000_000, 128)["nlist"] == 4096            # the automatic rule above 100k
    assert fingerprint_params(20_000, 128, m=16, nlist=128)["m"] == 16


def test_grouped_batches_hold_several_moments_of_a_recording():
    from audiofp.train import grouped_batches

    groups = np.repeat(np.arange(10), 5)                       # 10 recordings, 5 segments each
    batches = grouped_batches(groups, batch_size=8, per_group=4, seed=1)
    flat = [i for b in batches for i in b]
    assert all(len(b) == 8 for b in batches) and len(flat) == len(set(flat)) and len(batches) == 50 // 8
    shared = [max(np.bincount(groups[b])) for b in batches]
    assert min(shared) >= 2                                     # runs of one recording meet in a batch
    assert grouped_batches(groups, 8, 4, seed=1) == batches and grouped_batches(groups, 8, 4, seed=2) != batches
    assert sorted(i for b in grouped_batches(groups, 10, 1, seed=1) for i in b) == list(range(50))   # random batches


def test_train_fingerprinter_dynamic_mode(tmp_path, capsys):
    """The seed's command line, online pairs (fresh segments and degradations every epoch)."""
    import yaml

    from tools import train_fingerprinter

    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for i in range(5):
        sf.write(wavs / f"r{i}.wav", _recording(10 + i, seconds=5.0), SR)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"model": TINY, "train": {"file_group": 2}}))
    out = tmp_path / "model"
    assert train_fingerprinter.main(["--epochs", "1", "--batch_size", "4", "--config", str(tmp_path / "tiny.yaml"), "--out_dir", str(out),
                                     "--no_progress", "dynamic", "--path", str(wavs), "--segments", "4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and (out / "best.pt").exists()
    record = yaml.safe_load((out / "train_fingerprinter.yaml").read_text())
    assert record["train_pairs"] == 16 and record["val_pairs"] == 4            # 4 + 1 files, 4 segments each


def test_online_datasets_refuse_an_empty_noise_folder(tmp_path):
    from audiofp.online import online_datasets

    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for i in range(3):
        sf.write(wavs / f"r{i}.wav", _recording(20 + i, seconds=3.0), SR)
    (tmp_path / "noise").mkdir()
    with pytest.raises(ValueError, match="noise folder .*noise holds no audio file"):
        online_datasets(wavs, noise_dir=tmp_path / "noise")


def test_evaluation_scores_recording_and_offset():
    from audiofp.evaluate import make_queries, score, table

    refs = [("a", _recording(30, 6.0)), ("b", _recording(31, 6.0))]
    rng = np.random.default_rng(0)
    queries = make_queries(refs, SR, [1.0, 2.0], [5.0], 4, [rng.normal(size=SR * 3)], [np.array([1.0, 0.3])], seed=2)
    assert len(queries) == 8 and all(len(q["audio"]) == int(q["length_s"] * SR) for q in queries)
    truth = {id(q["audio"]): q for q in queries}
    exact = score(queries, lambda y: [{"recording": truth[id(y)]["recording"], "offset_s": truth[id(y)]["offset_s"]}])
    assert exact["hit_rate"] == {"1s@5dB": 1.0, "2s@5dB": 1.0} and exact["recording_right"] == 1.0
    late = score(queries, lambda y: [{"recording": truth[id(y)]["recording"], "offset_s": truth[id(y)]["offset_s"] + 2}])
    assert late["hit_rate"]["1s@5dB"] == 0.0 and late["recording_right"] == 1.0      # right recording, wrong place
    assert score(queries, lambda y: [])["recording_right"] == 0.0
    assert "| 2 s | 1.000 |" in table({"learned": exact}, [1.0, 2.0], [5.0])


def _unit(rng, n, dim=16):
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_path_similarity_interpolates_between_stored_fingerprints():
    from audiofp.search import path_similarity

    ref = _unit(np.random.default_rng(0), 6)
    starts = np.array([0.0, 0.5])
    sims = ref[[1, 2]] @ ref.T
    # on the grid: the stored fingerprints themselves
    assert path_similarity(sims, starts, 0.5, 0.5) == pytest.approx(1.0, abs=1e-6)
    # a quarter hop late: 3/4 of the fingerprint at the place before, 1/4 of the one after
    want = np.mean([0.75 + 0.25 * ref[1] @ ref[2], 0.75 + 0.25 * ref[2] @ ref[3]])
    assert path_similarity(sims, starts, 0.625, 0.5) == pytest.approx(want, abs=1e-5)
    # places past the recording's end count as 0
    sims = ref[[4, 5]] @ ref.T
    assert path_similarity(sims, starts, 2.5, 0.5) == pytest.approx(ref[4] @ ref[5] / 2, abs=1e-6)


def test_path_verification_tells_apart_a_passage_that_votes_tie():
    """A recording repeats a passage (a, b, c) at 1.0 s and 4.0 s, except its third place:
    x at 2.0 s, c at 5.0 s. The query's third segment is near c but nearer two decoys of
    another recording, so its hits never reach rec0: the votes of rec0 tie, and break
    towards the earlier window. The path along the whole query finds the right one."""
    from audiofp.search import identify_fingerprints
    from csi.index import ChunkIndex

    basis = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))[0].T.astype(np.float32)
    a, b, c, x, d1, d2, *fill = basis                    # orthonormal
    c_query = 0.5 * c + 0.6 * d1 + 0.6 * d2
    c_query /= np.linalg.norm(c_query)
    rec0 = np.stack([fill[0], fill[1], a, b, x, fill[2], fill[3], fill[4], a, b, c, fill[5]])
    refs = np.concatenate([rec0, np.stack([d1, d2, fill[6]])])
    owners = np.array([0] * 12 + [1] * 3)
    index = ChunkIndex.build(refs, owners, [{"utt": u, "song": u} for u in ("rec0", "rec1")], model={"hop_s": 0.5})
    fp, starts = np.stack([a, b, c_query]), np.array([0.0, 0.5, 1.0])
    by_votes = identify_fingerprints(index, fp, starts, k=2, verify=0)[0]
    assert by_votes["recording"] == "rec0" and by_votes["offset_s"] == pytest.approx(1.0)
    answer = identify_fingerprints(index, fp, starts, k=2, topk=2)
    assert answer[0]["recording"] == "rec0" and answer[0]["offset_s"] == pytest.approx(4.0)
    assert answer[0]["score"] == pytest.approx((2 + c_query @ c) / 3, abs=1e-4)
    assert answer[1]["recording"] == "rec1" and answer[1]["score"] == pytest.approx(c_query @ d1 / 3, abs=1e-4)


def test_bench_audio_is_resampled_to_each_systems_rate():
    from audiofp.evaluate import make_queries, resample_bench

    refs = [("a", _recording(30, 4.0)), ("b", _recording(31, 3.0))]
    rng = np.random.default_rng(0)
    queries = make_queries(refs, SR, [1.0], [10.0], 3, [rng.normal(size=SR * 2)], [np.array([1.0])], seed=1)
    assert resample_bench(refs, queries, SR, SR) == (refs, queries)           # same rate: the same objects
    low_refs, low_queries = resample_bench(refs, queries, SR, SR // 2)
    assert [(rec, len(y)) for rec, y in low_refs] == [("a", 2 * SR), ("b", 3 * SR // 2)]
    assert all(len(q["audio"]) == SR // 2 and q["audio"].dtype == np.float32 for q in low_queries)
    assert [{k: v for k, v in q.items() if k != "audio"} for q in low_queries] == \
        [{k: v for k, v in q.items() if k != "audio"} for q in queries]       # truth and cell kept
    assert len(queries[0]["audio"]) == SR                                      # the bench's own left alone
