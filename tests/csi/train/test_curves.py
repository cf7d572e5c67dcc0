"""Training history and the learning-curve plot (csi.train.curves, tools.plot_learning_curve)."""
import json

from csi.train.curves import read_history, write_history
from tools import plot_learning_curve


def test_history_round_trip_and_plot(tmp_path):
    history = [{"epoch": 0, "step": 10, "wall_minutes": 0.5, "map": {"val": 0.2, "test": 0.1}},
               {"epoch": 1, "step": 20, "wall_minutes": 1.0, "map": {"val": 0.4, "test": 0.3}}]
    write_history(tmp_path, history)
    assert read_history(tmp_path) == history
    metrics = {"MAP": 0.3, "chance": {"MAP": 0.05}, "baselines": {"chroma_mean": {"MAP": 0.2}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert plot_learning_curve.reference_maps(tmp_path / "metrics.json") == {"chance": 0.05, "chroma_mean": 0.2}
    assert plot_learning_curve.main([str(tmp_path), "--references", str(tmp_path / "metrics.json")]) == 0
    png = tmp_path / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_history_is_a_clear_error(tmp_path, capsys):
    assert plot_learning_curve.main([str(tmp_path)]) == 1
    assert "no training history" in capsys.readouterr().err
    write_history(tmp_path, [])  # training stopped before its first epoch ended: an empty plot
    assert plot_learning_curve.main([str(tmp_path), "--out", str(tmp_path / "x.png")]) == 0
