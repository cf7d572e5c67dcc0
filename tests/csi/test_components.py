"""Component slots: a front end, a model and a loss registered from inside this test (no
other file touched) go through stage 2, training, evaluation, indexing and identification;
every consumer reads the front end from the model directory (config/model_card.yaml), so
embeddings of audio equal those of the stored features."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from csi.features.cqt import FRONTENDS, amplitude_to_db
from csi.losses import LOSSES
from csi.models import MODELS
from csi.models.heads import EmbeddingModel

SR = 8000


class ToyBands(torch.nn.Module):
    """Log energy in ``n_bands`` equal-width FFT bands per frame of ``hop_s``."""
    pad_value = -100.0

    def __init__(self, sr: int = 16000, hop_s: float = 0.05, n_bands: int = 24):
        super().__init__()
        self.sr, self.hop_s, self.n_bands = sr, hop_s, n_bands
        self.hop = int(round(sr * hop_s))

    @property
    def output_size(self) -> int:
        return self.n_bands

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        frames = y[: len(y) // self.hop * self.hop].reshape(-1, self.hop).float()
        power = torch.fft.rfft(frames * torch.hann_window(self.hop), dim=1).abs() ** 2
        bands = power[:, 1: 1 + (power.shape[1] - 1) // self.n_bands * self.n_bands]
        return amplitude_to_db(bands.reshape(len(frames), self.n_bands, -1).sum(-1).sqrt())


class ToyMean(EmbeddingModel):
    """Mean and standard deviation over time, then a linear layer."""

    def __init__(self, input_dim: int = 24, embed_dim: int = 16, ce=None, triplet=None, center=None, losses=None):
        super().__init__()
        self.input_dim = input_dim
        self.proj = torch.nn.Linear(2 * input_dim, embed_dim)
        self.build_heads(embed_dim, ce, triplet, center, losses)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([feat.mean(1), feat.std(1)], dim=1) / 20.0)


class ToySpread(torch.nn.Module):
    """Mean squared distance of each embedding to its class mean in the batch."""
    input = "embedding"

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        same = (labels[:, None] == labels[None, :]).float()
        means = same @ x / same.sum(1, keepdim=True)
        return ((x - means) ** 2).sum(1).mean()


@pytest.fixture(scope="module")
def toys():
    FRONTENDS.register("toy_bands")(ToyBands)
    MODELS.register("toy_mean")(ToyMean)
    LOSSES.register("toy_spread")(ToySpread)
    yield
    FRONTENDS.unregister("toy_bands")
    MODELS.unregister("toy_mean")
    LOSSES.unregister("toy_spread")


def _corpus(root, n_works=4, per_work=3):
    """Works: chords of their own three tones; versions: other level, noise and length."""
    rng = np.random.default_rng(0)
    lines = []
    for w in range(n_works):
        freqs = rng.uniform(150, 2500, 3)
        for v in range(per_work):
            t = np.arange(int(SR * (3 + v))) / SR
            y = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (0.2 + 0.1 * v) + rng.normal(0, 0.02, len(t))
            path = root / "wav" / f"w{w}v{v}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y.astype(np.float32), SR)
            lines.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}"})
    return lines


@pytest.mark.parametrize("frontend", [{"name": "toy_bands", "hop_s": 0.05, "n_bands": 24},
                                      {"name": "coverhunter_cqt", "hop_s": 0.02}], ids=["toy_bands", "cqt_8k_50fps"])
def test_registered_components_train_and_evaluate_from_audio(toys, tmp_path, frontend):
    from tools import build_index, eval_testset, extract_csi_features, identify, train
    from csi.embed import embed_records
    from csi.modeldir import open_model

    records = _corpus(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    (data / "hparams.yaml").write_text(yaml.safe_dump({"sr": SR, "frontend": frontend, "min_dur_s": 1.0,
                                                      "device": "cpu"}))
    assert extract_csi_features.main([str(data), "--no_progress"]) == 0
    stored = [json.loads(line) for line in (data / "full.txt").read_text().splitlines()]
    bins = np.load(stored[0]["feat"]).shape[1]

    exp = tmp_path / "exp"
    (exp / "config").mkdir(parents=True)
    fps = 1 / frontend["hop_s"]
    hp = {"model": "toy_mean", "train_path": str(data / "full.txt"),
          "dev": {"query_path": str(data / "full.txt"), "ref_path": str(data / "full.txt")},
          "chunk_frame": [20], "mean_size": 1, "m_per_class": 2, "batch_size": 8, "num_workers": 0,
          "max_epochs": 2, "seed": 1, "device": "cpu", "input_dim": bins, "embed_dim": 16,
          "ce": {"output_dims": "auto"},
          "losses": [{"name": "focal", "weight": 1.0, "gamma": 0.0}, {"name": "toy_spread", "weight": 0.5}]}
    segments = frontend["name"] == "toy_bands"     # a segment model: overlapping chunks, best pairs
    if segments:
        hp["matching"] = {"hop_s": 10 / fps, "distance": "best_pairs", "best_k": 2}
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    assert train.main([str(exp)]) == 0

    card = yaml.safe_load((exp / "config" / "model_card.yaml").read_text())
    assert card["model"] == "toy_mean" and card["frontend"]["name"] == frontend["name"]
    assert card["frontend"]["params"]["sr"] == SR and card["frontend"]["frames_per_s"] == pytest.approx(fps)
    assert card["chunk_s"] == pytest.approx(20 / fps) and card["input_dim"] == bins
    assert card["matching"] == (hp["matching"] if segments else {"hop_s": None, "distance": "min", "best_k": 3})

    # the same recordings from audio (front end of the model card) and from stored features
    loaded = open_model(exp, device="cpu")
    policy = loaded.card.chunking()
    wav_only = [{"utt": r["utt"], "wav": r["wav"], "song": r["song"]} for r in records]
    from_audio = embed_records(loaded.model, wav_only, policy, loaded.reader())
    from_store = embed_records(loaded.model, stored, policy, loaded.reader())
    assert not from_audio.failed and np.array_equal(from_audio.owner, from_store.owner)
    assert np.abs(from_audio.emb - from_store.emb).max() < 0.02          # float16 storage only

    manifest = tmp_path / "wav_only.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in wav_only))
    assert eval_testset.main([str(exp), str(manifest), str(manifest), "--out_dir", str(tmp_path / "eval"),
                              "--device", "cpu", "--no_progress"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["failed"] == 0 and metrics["frontend"] == frontend["name"] and 0 < metrics["MAP"] <= 1
    assert metrics["distance"] == card["matching"]["distance"]          # the model's own track comparison
    assert metrics["hop_frames"] == (10 if segments else 20)

    assert build_index.main([str(exp), str(manifest), str(tmp_path / "index"), "--no_progress"]) == 0
    index_info = json.loads((tmp_path / "index" / "index.json").read_text())
    assert index_info["model"]["frontend"]["name"] == frontend["name"]
    assert index_info["model"]["matching"] == card["matching"] and index_info["model"]["hop_frames"] == (
        10 if segments else 20)                                       # identify scores as the model says
    assert identify.main([str(tmp_path / "index"), records[0]["wav"], "--json", "--topk", "2"]) == 0


def test_front_end_mismatch_is_refused(toys, tmp_path):
    """Features made by one front end are not embedded by a model of another."""
    from csi.features.frontend import FrontEnd, resolve_frontend
    from csi.features.reader import FeatureReader, FrontEndMismatch
    from csi.features.store import FeatureStore

    store = FeatureStore(tmp_path / "store", {"sr": SR, "frontend": {"name": "toy_bands", "n_bands": 24}}).open()
    path = store.save("a", np.zeros((30, 24), np.float32))
    reader = FeatureReader(resolve_frontend({"name": "toy_bands", "n_bands": 24}, 16000), 24)
    with pytest.raises(FrontEndMismatch, match="toy_bands"):
        reader({"utt": "a", "feat": str(path)})
    same = FeatureReader(resolve_frontend({"name": "toy_bands", "n_bands": 24}, SR), 24)
    assert same({"utt": "a", "feat": str(path)}).shape == (30, 24)
    assert isinstance(same.frontend, FrontEnd)
