"""Pitch-class profiles provided with a data set, as a registered front end (``datacos_pcp``).

Da-TACOS ships its features, not its audio: ``crema`` (CREMA chord-model PCP, 12 bins in
[0, 1]) and ``hpcp`` (Essentia HPCP, 12 bins) for every performance. This front end
*describes* such features so that the feature store's fingerprint and the model card record
them like any other front end (name, source key, bins, frame rate, padding value), a store
of another front end is refused, and the evaluation cache and the index never mix them with
CQT features. It does **not** compute a PCP from audio: ``forward`` refuses with a message,
because a chroma computed here would not be the provided feature (another model, another
tuning and frame rate) and a model trained on one would be silently evaluated on the other.
Audio is matched to Da-TACOS with a CQT model instead (egs/datacos, the audio route).

    frontend: {name: datacos_pcp, source: crema, n_bins: 12, sr: 44100, hop_length: 512, pad_value: 0.0}

``sr``/``hop_length`` give the frame rate of the provided frames. The default is what the
Da-TACOS features were extracted with (acoss: 44.1 kHz audio, one hop of 512 samples for every
feature, crema resampled to it: 86.13 frames/s); set them to what made your files.
"""
from __future__ import annotations

import torch

from csi.features.cqt import FRONTENDS
from csi.registry import ConfigError

PCP_SOURCES = ("crema", "hpcp", "chroma_cens")


@FRONTENDS.register("datacos_pcp")
class ProvidedPCP(torch.nn.Module):
    """A (frames, n_bins) PCP read from the data set's files (``source`` key); see the module."""

    def __init__(self, sr: int = 44100, hop_length: int = 512, n_bins: int = 12, source: str = "crema",
                 pad_value: float = 0.0):
        super().__init__()
        if source not in PCP_SOURCES:
            raise ConfigError(f"frontend datacos_pcp: source must be one of {', '.join(PCP_SOURCES)}, got {source!r}")
        if int(n_bins) not in (12, 24, 36) or int(sr) <= 0 or int(hop_length) <= 0:
            raise ConfigError(f"frontend datacos_pcp: need n_bins 12, 24 or 36 and positive sr and hop_length, "
                              f"got {n_bins}, {sr}, {hop_length}")
        self.sr, self.hop_length, self.n_bins, self.source = int(sr), int(hop_length), int(n_bins), source
        self.hop_s = self.hop_length / self.sr
        self.pad_value = float(pad_value)

    @property
    def output_size(self) -> int:
        return self.n_bins

    def extra_repr(self) -> str:
        return f"source={self.source}, n_bins={self.n_bins}, hop_s={self.hop_s:.5f}"

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        raise ConfigError(
            f"front end datacos_pcp reads the {self.source!r} features provided in the data set's HDF5 files; it "
            "does not compute them from audio. Give records with 'feat' (the imported features), or match audio "
            "with a model trained on CQT features (egs/datacos/run.sh --audio_dir, the audio route)")
