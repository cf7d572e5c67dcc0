"""The model card's matching (segment hop, track distance): validated in the training config,
written to and read from the card, and the default of every consumer's chunking."""
import pytest

from csi.features.frontend import resolve_frontend
from csi.modeldir import ModelCard
from csi.scoring.matching import Matching
from csi.features.frontend import COVERHUNTER_CQT
from csi.registry import ConfigError
from csi.train.config import parse_hparams


def _card(matching: Matching = Matching()) -> ModelCard:
    return ModelCard("pitch_cnn", 96, 128, 10, 2, 250, resolve_frontend(COVERHUNTER_CQT), matching)


def test_card_round_trip_and_default_hop():
    card = _card(Matching(hop_s=5.0, distance="best_pairs", best_k=4))
    again = ModelCard.from_dict(card.to_dict(), "card")
    assert again == card
    assert card.chunking().hop_frames == 125                       # 5 s at 25 frames/s
    assert card.chunking(hop_s=2.0).hop_frames == 50               # the command line wins
    assert card.chunking(chunk_s=4.0).hop_frames == 100            # another chunk: no overlap
    assert _card().chunking().hop_frames == 250


def test_card_without_matching_is_coverhunter():
    d = _card().to_dict()
    d.pop("matching")
    assert ModelCard.from_dict(d, "old card").matching == Matching(None, "min", 3)


def test_overrides_keep_the_rest():
    m = Matching(5.0, "best_pairs", 3).with_overrides(best_k=5)
    assert m == Matching(5.0, "best_pairs", 5)
    assert Matching().with_overrides(distance="mean").distance == "mean"


@pytest.mark.parametrize("section, message", [
    ({"distance": "median"}, "distance must be one of min, mean, best_pairs"),
    ({"best_k": 0}, "best_k must be >= 1"),
    ({"hop_s": -1.0}, "hop_s must be positive"),
    ({"hop": 5.0}, "hop"),
])
def test_training_config_refuses_bad_matching(section, message):
    hp = {"model": "pitch_cnn", "train_path": "x.txt", "input_dim": 96, "embed_dim": 128, "matching": section}
    with pytest.raises(ConfigError, match=message):
        parse_hparams(hp, "hp.yaml")


def test_training_config_reads_matching():
    hp = {"model": "pitch_cnn", "train_path": "x.txt", "input_dim": 96, "embed_dim": 128,
          "matching": {"hop_s": 5, "distance": "best_pairs"}}
    parsed = parse_hparams(hp, "hp.yaml")
    assert parsed.train.matching == Matching(5.0, "best_pairs", 3)
    assert parsed.resolved()["matching"] == {"hop_s": 5, "distance": "best_pairs", "best_k": 3}
