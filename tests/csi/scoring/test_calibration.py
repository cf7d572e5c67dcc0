"""Calibrated matches: Platt fit, expected calibration error, the tool, identify's p_same_work."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from csi.scoring.calibration import Calibration, CalibrationMismatch, expected_calibration_error, fit_isotonic, fit_platt


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


def test_isotonic_fit_is_monotone_and_calibrated():
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 0.6, 4000)
    truth = np.where(d < 0.2, 0.9, np.where(d < 0.35, 0.5, 0.05))          # a step, not a logistic
    y = rng.random(4000) < truth
    iso, platt = fit_isotonic(d[:2000], y[:2000]), fit_platt(d[:2000], y[:2000])
    grid = np.linspace(-0.1, 0.8, 500)
    p = iso.probability(grid)
    assert np.all(np.diff(p) <= 1e-12) and p.min() >= 0 and p.max() <= 1    # closer: never less likely
    assert np.all(np.diff(platt.probability(grid)) < 0)
    assert iso.probability(0.1) == pytest.approx(0.9, abs=0.05) and iso.probability(0.5) == pytest.approx(0.05, abs=0.04)
    ece_iso = expected_calibration_error(iso.probability(d[2000:]), y[2000:])
    assert ece_iso < 0.04 and ece_iso < expected_calibration_error(platt.probability(d[2000:]), y[2000:])
    pooled = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 0, 1, 0]))   # violators pooled
    assert [k[1] for k in pooled.knots] == [1.0, 0.5, 0.5, 0.0]           # block 0.2-0.3 pooled
    assert pooled.probability([0.2, 0.25, 0.3]).tolist() == [0.5, 0.5, 0.5]


def test_calibration_of_another_model_or_distance_is_refused(tmp_path):
    model = {"checkpoint_sha256": "a" * 64, "model_dir": "/m"}
    cal = fit_platt(np.array([0.1, 0.2, 0.5, 0.6]), np.array([1, 1, 0, 0])).with_source(
        model, {"hop_s": None, "distance": "min", "best_k": 3})
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    again.check(model, {"hop_s": None, "distance": "min", "best_k": 3}, "cal")
    with pytest.raises(CalibrationMismatch, match="another model"):
        again.check({"checkpoint_sha256": "b" * 64}, {"distance": "min", "best_k": 3}, "cal")
    with pytest.raises(CalibrationMismatch, match="fitted on the min distance"):
        again.check(model, {"distance": "best_pairs", "best_k": 3}, "cal")
    with pytest.raises(CalibrationMismatch, match="no model recorded"):
        Calibration(1.0, -5.0, 10).check(model, {"distance": "min", "best_k": 3}, "cal")
    (tmp_path / "calibration.json").write_text('{"slope": 3}')
    with pytest.raises(CalibrationMismatch, match="not a calibration file"):
        Calibration.load(tmp_path)


def test_tool_writes_calibration_that_identify_prints(tmp_path, capsys):
    from csi.features.frontend import resolve_frontend
    from csi.modeldir import ModelCard
    from csi.models import build_model
    from tests.helpers import write_model_dir
    from tools import build_index, calibrate_matches, identify

    hp = {"model": "pitch_cnn", "input_dim": 96, "embed_dim": 16, "channels": [8], "time_pool": [2],
          "fold": "chroma", "ce": {"output_dims": 4}}
    model = write_model_dir(tmp_path / "model", {**hp, "train_path": "-", "mean_size": 1, "chunk_frame": [50]},
                            card=ModelCard("pitch_cnn", 96, 16, 4, 1, 50, resolve_frontend({"name": "coverhunter_cqt"})))
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
    assert cal.model["checkpoint_sha256"] and cal.matching["distance"] == "min"

    # the index's model changes (another checkpoint): the calibration is refused with the reason
    torch.save({"generator": build_model(hp).state_dict()}, model / "pt_model" / "g_00000000")
    other = tmp_path / "index2"
    assert build_index.main([str(model), str(manifest), str(other), "--no_progress", "--device", "cpu"]) == 0
    (other / "calibration.json").write_text((index / "calibration.json").read_text())
    capsys.readouterr()
    assert identify.main([str(other), records[0]["wav"], "--device", "cpu"]) == 1
    assert "fitted for another model" in capsys.readouterr().err
