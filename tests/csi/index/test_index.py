"""Search index: exact and approximate search, aggregation, save/load, add, model identity,
build_index + identify end to end on a tiny model."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from csi.index import ChunkIndex, IndexFileError, ModelMismatchError, aggregate, auto_params, check_model
from csi.index.identity import model_identity
from csi.index.vectors import VectorFile
from tests.bench.index import clustered_vectors, make_model_dir, tone_audio
from tests.helpers import REPO
from tools import build_index, identify

TINY_MODEL = {"input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
              "ce": {"output_dims": 4}}
TINY_TRAIN = {"train_path": "x", "chunk_frame": [100], "mean_size": 2, "m_per_class": 2, "batch_size": 4}
SR = 16000


def exact_top(base, queries, k):
    return np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])


def records_for(owners, per_work=2):
    return [{"utt": f"r{i}", "song": f"w{i // per_work}"} for i in range(int(owners.max()) + 1)]


def test_flat_finds_planted_neighbours():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((2000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    owners = np.arange(2000) // 5
    index = ChunkIndex.build(base, owners, records_for(owners), kind="flat")
    planted = rng.choice(2000, 20, replace=False)
    queries = base[planted] + rng.standard_normal((20, 32)).astype(np.float32) * 0.05
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, ids = index.search(queries, 10)
    assert (ids[:, 0] == planted).all()
    assert (ids == exact_top(base, queries, 10)).all()
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ base.T, ids, 1), atol=1e-5)


@pytest.mark.parametrize("kind,minimum", [("ivfpq", 0.85), ("hnsw", 0.95)])
def test_approximate_recall_on_clustered_data(kind, minimum):
    data = clustered_vectors(6000, dim=32, seed=1)
    base, queries = data[:5900], data[5900:]
    owners = np.arange(5900) // 10
    index = ChunkIndex.build(base, owners, records_for(owners), kind=kind)
    _, ids = index.search(queries, 10)
    assert recall(ids, exact_top(base, queries, 10)) >= minimum


def test_auto_params_rules():
    p = auto_params("ivfpq", 1_000_000, 128)
    assert (p.nlist, p.m, p.nbits, p.nprobe) == (4096, 64, 8, 64)
    small = auto_params("ivfpq", 100, 32)
    assert small.nlist == 2 and small.nbits == 6 and small.nprobe == 2
    assert auto_params("ivfpq", 10_000, 128, m=16, nprobe=5).m == 16
    assert auto_params("hnsw", 1000, 128).hnsw_m == 16 and auto_params("hnsw", 10**6, 128).hnsw_m == 32
    with pytest.raises(ValueError, match="divide"):
        auto_params("ivfpq", 10_000, 128, m=24)
    with pytest.raises(ValueError, match="does not apply"):
        auto_params("flat", 100, 32, nprobe=3)


def test_aggregation_to_recordings_and_works():
    owner = np.array([0, 0, 1, 1, 2, 3])          # vector -> recording
    recording_song = np.array([0, 0, 1, 2])       # recording -> work
    utts, songs = ["a1", "a2", "b1", "c1"], ["A", "B", "C"]
    ids = np.array([[2, 4, 0], [5, 1, -1]])       # two query chunks
    scores = np.array([[0.9, 0.8, 0.5], [0.85, 0.95, 0.0]], np.float32)
    r = aggregate(scores, ids, owner, recording_song, utts, songs, topk=None)
    assert [(m.utt, m.song, round(m.score, 2)) for m in r.recordings] == [
        ("a1", "A", 0.95), ("a2", "A", 0.9), ("c1", "C", 0.85), ("b1", "B", 0.8)]
    assert [(w.song, round(w.score, 2), w.utt, w.recordings) for w in r.works] == [
        ("A", 0.95, "a1", 2), ("C", 0.85, "c1", 1), ("B", 0.8, "b1", 1)]
    assert [w["rank"] for w in r.to_dict()["works"]] == [1, 2, 3]
    assert len(aggregate(scores, ids, owner, recording_song, utts, songs, topk=1).works) == 1
    assert aggregate(scores[:, :0], ids[:, :0], owner, recording_song, utts, songs).works == []


@pytest.mark.parametrize("kind, atol", [("flat", 1e-5), ("hnsw", 1e-5), ("ivfpq", 0.1)])
@pytest.mark.parametrize("distance", ["best_pairs", "mean"])
def test_rank_by_the_models_track_distance(kind, atol, distance):
    """With a best-pairs (or mean) model, the recordings hit are scored 1 - distance over all
    their stored chunks: the same as the evaluation's distance (exact up to PQ decoding)."""
    from csi.scoring.matching import Matching
    from csi.scoring.distance import naive_track_distances

    data = clustered_vectors(1200, dim=32, seed=3)
    owners = np.arange(1200) // 10
    index = ChunkIndex.build(data, owners, records_for(owners, per_work=3), kind=kind)
    query = data[30:36] + 0.05 * np.random.default_rng(0).normal(size=(6, 32)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    matching = Matching(None, distance, 3)
    ranking = index.rank(query, topk=None, k_chunks=50, matching=matching)
    want = naive_track_distances(query, np.zeros(6, int), 1, data, owners, 120, mode=distance, best_k=3)[0]
    got = {m.utt: m.score for m in ranking.recordings}
    assert ranking.recordings[0].utt == "r3" and len(got) > 3
    for utt, score in got.items():
        assert score == pytest.approx(1 - want[int(utt[1:])], abs=atol)
    scores = [m.score for m in ranking.recordings]
    assert scores == sorted(scores, reverse=True) and ranking.works[0].song == "w1"
    plain = index.rank(query, topk=5, k_chunks=50)             # min: each recording's best chunk hit
    assert plain.recordings[0].utt == "r3"


@pytest.mark.parametrize("kind", ["flat", "ivfpq", "hnsw"])
def test_save_load_round_trip(tmp_path, kind):
    data = clustered_vectors(1200, dim=32, seed=2)
    owners = np.arange(1200) // 10
    recs = [dict(r, version="v", wav=f"/x/{r['utt']}.wav") for r in records_for(owners, per_work=3)]
    index = ChunkIndex.build(data, owners, recs, kind=kind, model={"checkpoint_sha256": "abc", "embed_dim": 32})
    index.save(tmp_path)
    loaded = ChunkIndex.load(tmp_path)
    assert loaded.kind == kind and loaded.params == index.params and loaded.model == index.model
    assert loaded.ntotal == 1200 and len(loaded) == 120 and loaded.recordings[3]["wav"] == "/x/r3.wav"
    s1, i1 = index.search(data[:5], 10)
    s2, i2 = loaded.search(data[:5], 10)
    assert (i1 == i2).all()
    np.testing.assert_allclose(s1, s2)
    info = json.loads((tmp_path / "index.json").read_text())
    assert info["count"] == 1200 and info["recordings"] == 120 and info["works"] == 40 and info["dim"] == 32
    lines = (tmp_path / "meta.jsonl").read_text().splitlines()
    assert json.loads(lines[1]) == {"utt": "r1", "song": "w0", "start": 10, "count": 10, "version": "v",
                                    "wav": "/x/r1.wav"}
    # files that disagree (an interrupted save) are refused
    (tmp_path / "meta.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexFileError, match="disagree"):
        ChunkIndex.load(tmp_path)
    with pytest.raises(IndexFileError, match="not an index"):
        ChunkIndex.load(tmp_path / "nowhere")


@pytest.mark.parametrize("kind", ["flat", "ivfpq", "hnsw"])
def test_add_then_search_finds_new_recording(tmp_path, kind):
    data = clustered_vectors(1500, dim=32, seed=3)
    owners = np.arange(1000) // 10
    index = ChunkIndex.build(data[:1000], owners, records_for(owners), kind=kind)
    index.save(tmp_path)
    index = ChunkIndex.load(tmp_path)
    new = data[1000:1010]                          # one new recording, a work of its own
    assert index.add(new, np.zeros(10, int), [{"utt": "new", "song": "fresh"}]) == 1
    with pytest.raises(ValueError, match="already in the index"):
        index.add(new, np.zeros(10, int), [{"utt": "new", "song": "fresh"}])
    assert index.ntotal == 1010 and "new" in index
    ranking = index.rank(new[:3], topk=3)
    assert ranking.works[0].song == "fresh" and ranking.works[0].utt == "new"
    assert ranking.works[0].score == pytest.approx(1.0, abs=0.05)
    index.save(tmp_path)
    assert ChunkIndex.load(tmp_path).rank(new[4:5], topk=1).recordings[0].utt == "new"


def test_check_model_reasons():
    recorded = {"checkpoint": "g_00000001", "checkpoint_sha256": "aaa", "embed_dim": 128, "chunk_frames": 750,
                "mean_size": 3, "model_dir": "/m"}
    check_model(recorded, dict(recorded, checkpoint="renamed", model_dir="/elsewhere"), 128)
    with pytest.raises(ModelMismatchError, match="checkpoint g_00000001"):
        check_model(recorded, dict(recorded, checkpoint_sha256="bbb"), 128)
    with pytest.raises(ModelMismatchError, match="128-d vectors but the model gives 64-d"):
        check_model(recorded, dict(recorded, embed_dim=64), 128)
    with pytest.raises(ModelMismatchError, match="chunk_frames 750"):
        check_model(recorded, dict(recorded, chunk_frames=600), 128)


# ---- end to end: tools.build_index + tools.identify on a tiny model ------------------------------

@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A tiny model, 6 reference recordings (3 works; 5 wav-only, 1 with a stored feature)
    and an index built from them."""
    root = tmp_path_factory.mktemp("index_e2e")
    model_dir = make_model_dir(root / "model", TINY_MODEL, TINY_TRAIN)
    records = []
    for w in range(3):
        for v in range(2):
            path = root / f"w{w}v{v}.wav"
            sf.write(path, tone_audio(10 + 3 * v, SR, seed=10 * w + v), SR)
            records.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}", "version": f"v{v}"})
    from csi.modeldir import read_card
    from csi.features.reader import FeatureReader
    np.save(root / "w2v1.npy", FeatureReader(read_card(model_dir).frontend).audio_features(records[-1]["wav"])
            .astype(np.float16))
    records[-1]["feat"] = str(root / "w2v1.npy")
    (root / "refs.txt").write_text("".join(json.dumps(r) + "\n" for r in records[:5]))
    (root / "more.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert build_index.main([str(model_dir), str(root / "refs.txt"), str(root / "index"), "--no_progress"]) == 0
    return root, model_dir, records


def test_build_index_writes_index_and_run_info(collection):
    root, model_dir, _ = collection
    info = json.loads((root / "index" / "index.json").read_text())
    ident = model_identity(model_dir)
    assert info["type"] == "flat" and info["recordings"] == 5 and info["works"] == 3 and info["dim"] == 32
    assert info["model"]["checkpoint_sha256"] == ident["checkpoint_sha256"]
    assert info["model"]["chunk_frames"] == 200 and info["model"]["hop_frames"] == 200
    assert info["count"] == 5 + 5          # 10 s → 2 chunks of 8 s; 13 s → 2
    assert (root / "index" / "build_index_run.yaml").exists()


def test_identify_answers_good_queries_and_reports_bad_ones(collection, capsys):
    root, _, records = collection
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    sf.write(root / "silent.wav", np.zeros(SR * 3, np.float32), SR)
    queries = [records[0]["wav"], str(root / "empty.wav"), str(root / "corrupt.wav"), str(root / "silent.wav"),
               records[3]["wav"]]
    assert identify.main([str(root / "index"), *queries, "--topk", "3", "--json"]) == 0
    out, err = capsys.readouterr()
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a["query"] for a in answers] == [records[0]["wav"], records[3]["wav"]]
    for answer, rec in zip(answers, [records[0], records[3]]):
        assert answer["recordings"][0]["utt"] == rec["utt"]          # a reference finds itself
        assert answer["works"][0] == {"rank": 1, "song": rec["song"], "score": pytest.approx(1.0, abs=1e-4),
                                      "utt": rec["utt"], "recordings": answer["works"][0]["recordings"]}
        assert len(answer["works"]) == 3 and answer["chunks"] == 2
    bad = err.strip().splitlines()
    assert len(bad) == 3 and all(line.startswith("identify: ") for line in bad)
    assert "empty.wav" in bad[0] and "corrupt.wav" in bad[1] and "silent" in bad[2]

    assert identify.main([str(root / "index"), records[1]["wav"], "--topk", "2"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1].split()[:3] == ["1", "1.0000", "work0"] and "(best: w0v1)" in text

    assert identify.main([str(root / "index"), str(root / "empty.wav"), str(root / "corrupt.wav")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_work_centroids_rank_works_and_cover_their_chunks(tmp_path):
    from csi.index.centroids import WorkCentroids

    data = clustered_vectors(1200, dim=32, seed=4)          # 10 chunks a recording, 4 recordings a work
    owners = np.arange(1200) // 10
    index = ChunkIndex.build(data, owners, records_for(owners, per_work=4), kind="flat",
                             model={"checkpoint_sha256": "abc"})
    cents = WorkCentroids.from_index(index, quantile=0.9)
    assert cents.centroids.shape == (30, 32) and np.allclose(np.linalg.norm(cents.centroids, axis=1), 1, atol=1e-5)
    work_of = np.arange(1200) // 40
    inside = 1 - np.einsum("ij,ij->i", data, cents.centroids[work_of]) <= cents.radius[work_of]
    assert 0.85 <= inside.mean() <= 0.95                      # the 0.9 quantile of each work's chunks
    hits = [cents.rank(data[r * 10:(r + 1) * 10], topk=1)[0]["song"] == f"w{r // 4}" for r in range(120)]
    assert np.mean(hits) > 0.95
    answer = cents.rank(data[:10], topk=3)
    assert answer[0]["within"] and [a["rank"] for a in answer] == [1, 2, 3] and answer[0]["recordings"] == 4
    cents.save(tmp_path)
    again = WorkCentroids.load(tmp_path, {"checkpoint_sha256": "abc"})
    assert again.songs == cents.songs and np.array_equal(again.centroids, cents.centroids)
    with pytest.raises(IndexFileError, match="another model"):
        WorkCentroids.load(tmp_path, {"checkpoint_sha256": "xyz"})
    with pytest.raises(IndexFileError, match="no work centroids"):
        WorkCentroids.load(tmp_path / "none", {})


def test_identify_with_centroids(collection, tmp_path, capsys):
    root, model_dir, records = collection
    out = tmp_path / "index"
    assert build_index.main([str(model_dir), str(root / "refs.txt"), str(out), "--centroids", "--no_progress"]) == 0
    capsys.readouterr()
    assert identify.main([str(out), records[0]["wav"], "--centroids", "--json", "--topk", "2"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["works"][0]["song"] == "work0" and answer["recordings"] == [] and len(answer["works"]) == 2
    assert identify.main([str(root / "index"), records[0]["wav"], "--centroids"]) == 1      # none built
    assert "no work centroids" in capsys.readouterr().err


def test_add_to_index_then_identify_new_recording(collection, tmp_path, capsys):
    root, model_dir, records = collection
    shutil.copytree(root / "index", tmp_path / "index")
    assert build_index.main([str(model_dir), str(root / "more.txt"), str(tmp_path / "index"), "--add",
                             "--no_progress"]) == 0
    info = json.loads((tmp_path / "index" / "index.json").read_text())
    assert info["recordings"] == 6 and info["count"] == 12
    capsys.readouterr()
    assert identify.main([str(tmp_path / "index"), records[5]["wav"], "--json", "--topk", "1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["works"][0]["utt"] == "w2v1"                       # stored feature = same CQT
    assert answer["works"][0]["score"] == pytest.approx(1.0, abs=1e-2)


def test_identify_refuses_another_model(collection, tmp_path, capsys):
    root, model_dir, records = collection
    other = make_model_dir(tmp_path / "other", TINY_MODEL, TINY_TRAIN, seed=1)
    assert identify.main([str(root / "index"), records[0]["wav"], "--model_dir", str(other)]) == 1
    assert "model does not match the index" in capsys.readouterr().err
    wider = make_model_dir(tmp_path / "wider", dict(TINY_MODEL, embed_dim=16), TINY_TRAIN)
    assert identify.main([str(root / "index"), records[0]["wav"], "--model_dir", str(wider)]) == 1
    assert "32-d vectors but the model gives 16-d" in capsys.readouterr().err
    assert build_index.main([str(other), str(root / "more.txt"), str(root / "index"), "--add", "--no_progress"]) == 1
    assert json.loads((root / "index" / "index.json").read_text())["recordings"] == 5


def test_identify_command_line(collection):
    root, _, records = collection
    (root / "empty2.wav").write_bytes(b"")
    out = subprocess.run([sys.executable, "-m", "tools.identify", str(root / "index"), str(root / "empty2.wav"),
                          records[2]["wav"], "--json", "--topk", "2"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("identify: ") and "empty2.wav" in out.stderr
    answer = json.loads(out.stdout)
    assert answer["works"][0]["utt"] == records[2]["utt"] and len(answer["works"]) == 2


def test_identify_rerank_qmax_orders_the_top_recordings_by_alignment(collection, capsys):
    root, model_dir, records = collection
    assert identify.main([str(root / "index"), records[0]["wav"], "--json", "--topk", "3", "--rerank", "qmax",
                          "--rerank_top", "5"]) == 0
    answer = json.loads(capsys.readouterr().out)
    recs = answer["recordings"]
    assert recs[0]["utt"] == records[0]["utt"] and answer["duration_s"] == pytest.approx(10.0, abs=0.1)
    aligned = [r["qmax_distance"] for r in recs if r["qmax_distance"] is not None]
    assert aligned == sorted(aligned) and [r["rank"] for r in recs] == [1, 2, 3]
    assert answer["works"][0]["song"] == records[0]["song"] and "qmax_distance" in answer["works"][0]
    assert identify.main([str(root / "index"), records[0]["wav"], "--rerank", "qmax", "--topk", "2"]) == 0
    assert "qmax " in capsys.readouterr().out.splitlines()[1]
    other = make_model_dir(root / "other_rr", TINY_MODEL, TINY_TRAIN, seed=2)
    assert identify.main([str(root / "index"), records[0]["wav"], "--rerank", "qmax", "--model_dir", str(other)]) == 1
    assert "model does not match the index" in capsys.readouterr().err


def test_streaming_build_from_disk_equals_the_in_memory_build(tmp_path):
    x = clustered_vectors(6000, dim=32, seed=3) * 3.0                 # not normalised: the index does it
    owners = np.arange(len(x)) // 10
    records = [{"utt": f"r{i}", "song": f"w{i // 4}"} for i in range(owners[-1] + 1)]
    path = tmp_path / "vectors.f32"
    x.astype(np.float32).tofile(path)
    on_disk = VectorFile(path, 32)
    for kind in ("ivfpq", "flat"):
        a = ChunkIndex.build(x, owners, records, kind=kind, seed=1)
        b = ChunkIndex.build_streaming(on_disk, owners, records, kind=kind, seed=1, batch_rows=1000)
        assert a.params == b.params and a.recordings == b.recordings
        assert np.array_equal(faiss_bytes(a), faiss_bytes(b)), kind
    index = ChunkIndex.build_streaming(on_disk[:3000], owners[:3000], records, kind="ivfpq", seed=1)
    assert index.add_streaming(on_disk[3000:], owners[3000:], records, batch_rows=700) == 300
    with pytest.raises(ValueError, match="recording by recording"):
        index.add_streaming(on_disk[:20], owners[:20][::-1].copy(), records)
    with pytest.raises(ValueError, match="not a whole number of 7-d float32 rows"):
        VectorFile(path, 7)


def faiss_bytes(index: ChunkIndex) -> np.ndarray:
    import faiss
    return faiss.serialize_index(index.index)


def test_streaming_build_holds_the_codes_not_the_vectors(tmp_path):
    """400k 128-d vectors (205 MB on disk): the arrays a build from the file allocates peak
    below a quarter of that (one batch, the training sample, the metadata); the in-memory
    build's above 1.5 times it (the vectors, normalised). Measured with tracemalloc, which numpy reports its
    allocations to (faiss's own, the codes, are not counted: they are the index)."""
    import tracemalloc

    n, dim = 400_000, 128
    path = tmp_path / "vectors.f32"
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for _ in range(8):
            VectorFile.append(f, rng.standard_normal((n // 8, dim), dtype=np.float32))
    x = VectorFile(path, dim)
    owners = np.arange(n) // 10
    records = [{"utt": f"r{i}", "song": f"w{i // 4}"} for i in range(n // 10)]
    peaks = {}
    for mode in ("stream", "memory"):
        vectors = x[:] if mode == "memory" else x
        tracemalloc.start()
        if mode == "stream":
            ChunkIndex.build_streaming(vectors, owners, records, kind="ivfpq", nlist=64, m=8, batch_rows=8192)
        else:
            ChunkIndex.build(vectors, owners, records, kind="ivfpq", nlist=64, m=8)
        peaks[mode] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del vectors
    data = n * dim * 4
    assert peaks["stream"] < data / 4 and peaks["memory"] > 1.5 * data, peaks


def test_sharded_build_equals_one_build_and_refuses_bad_parts(collection, tmp_path, capsys):
    """Three --shard jobs then --merge give the single build's index; a missing part, a part
    of another manifest and a part embedded by another model are refused by name."""
    root, model_dir, records = collection
    manifest = root / "more.txt"
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    common = ["--type", "ivfpq", "--nlist", "2", "--m", "8", "--no_progress"]
    assert build_index.main([str(model_dir), str(manifest), str(one), *common]) == 0
    for k in (1, 2, 3):
        assert build_index.main([str(model_dir), str(manifest), str(sharded), *common, "--shard", f"{k}/3"]) == 0
    assert not (sharded / "index.json").exists()              # a job writes its part only
    assert build_index.main([str(model_dir), str(manifest), str(sharded), *common, "--merge", "3"]) == 0
    a, b = ChunkIndex.load(one), ChunkIndex.load(sharded)
    assert a.recordings == b.recordings and faiss_bytes(a).tobytes() == faiss_bytes(b).tobytes()
    capsys.readouterr()

    part2 = sharded / "shards" / "part-2-of-3"
    shutil.move(part2, tmp_path / "aside")
    assert build_index.main([str(model_dir), str(manifest), str(sharded), *common, "--merge", "3"]) == 1
    assert "shard 2/3: not finished" in capsys.readouterr().err
    shutil.move(tmp_path / "aside", part2)

    assert build_index.main([str(model_dir), str(root / "refs.txt"), str(sharded), *common, "--merge", "3"]) == 1
    assert "made from another manifest" in capsys.readouterr().err

    other = make_model_dir(tmp_path / "other", TINY_MODEL, TINY_TRAIN, seed=1)
    assert build_index.main([str(other), str(manifest), str(sharded), *common, "--shard", "3/3"]) == 0
    assert build_index.main([str(model_dir), str(manifest), str(sharded), *common, "--merge", "3"]) == 1
    err = capsys.readouterr().err
    assert "shard 3/3" in err and "model does not match the index" in err and "embed those shards again" in err
    assert ChunkIndex.load(sharded).recordings == a.recordings       # the merged index is untouched
