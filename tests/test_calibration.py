"""Calibrated matches: Platt fit, expected calibration error, the tool, identify's p_same_work."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from csi.eval.calibration import Calibration, expected_calibration_error, fit_platt


def test_platt_fit_recovers_a_logistic_relation_and_ece_tells_calibration():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 0.6, 4000)
    truth = 1 / (1 + np.exp(-(2.0 - 8.0 * d)))
    y = rng.random(4000) < truth
    cal = fit_platt(d[:2000], y[:2000])
    assert cal.a == pytest.approx(2.0, abs=0.3) and cal.b == pytest.approx(-8.0, abs=1.0)
    assert expected_calibration_error(cal.probability(d[2000:]), y[2000:]) < 0.04
    assert expected_calibration_error(np.full(2000, 0.95), y[2000:]) > 0.3      # overconfident
    with pytest.raises(ValueError, match="both right and wrong"):
        fit_platt(d[:10], np.ones(10))


def test_tool_writes_calibration_that_identify_prints(tmp_path, capsys):
    from csi.embed import ModelCard, write_card
    from csi.embed.frontend import resolve_frontend
    from csi.models import build_model
    from tools import build_index, calibrate_matches, identify

    hp = {"model": "pitch_cnn", "input_dim": 96, "embed_dim": 16, "channels": [8], "time_pool": [2],
          "fold": "chroma", "ce": {"output_dims": 4}}
    model = tmp_path / "model"
    (model / "config").mkdir(parents=True)
    (model / "config" / "hparams.yaml").write_text(yaml.safe_dump({**hp, "train_path": "-", "mean_size": 1,
                                                                    "chunk_frame": [50]}))
    (model / "pt_model").mkdir()
    torch.manual_seed(0)
    torch.save({"generator": build_model(hp).state_dict()}, model / "pt_model" / "g_00000000")
    write_card(model, ModelCard("pitch_cnn", 96, 16, 4, 1, 50, resolve_frontend({"name": "coverhunter_cqt"})))
    rng = np.random.default_rng(1)
    records = []
    for w in range(10):
        chord = rng.uniform(150, 900, 3)
        for v in range(3):
            t = np.arange(16000 * 3) / 16000
            y = sum(np.sin(2 * np.pi * f * (1 + 0.03 * v) * t) for f in chord) * 0.2 + rng.normal(0, 0.05, len(t))
            path = tmp_path / "audio" / f"w{w}v{v}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, y.astype(np.float32), 16000)
            records.append({"utt": f"w{w}v{v}", "song": f"work{w}", "wav": str(path)})
    manifest = tmp_path / "val.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    index = tmp_path / "index"
    assert build_index.main([str(model), str(manifest), str(index), "--no_progress", "--device", "cpu"]) == 0
    assert calibrate_matches.main([str(model), str(manifest), str(index), "--no_progress", "--device", "cpu"]) == 0
    cal = Calibration.load(index)
    assert cal is not None and cal.b < 0 and (index / "reliability.png").exists()
    figures = yaml.safe_load((index / "calibrate_matches.yaml").read_text())["figures"]
    assert 0 <= figures["ece_heldout"] <= 1 and figures["queries_fit"] + figures["queries_heldout"] == 30
    assert identify.main([str(index), records[0]["wav"], "--json", "--topk", "3", "--device", "cpu"]) == 0

    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    p = [w["p_same_work"] for w in answer["works"]]
    assert all(0 <= x <= 1 for x in p) and p == sorted(p, reverse=True)          # closer: more likely
