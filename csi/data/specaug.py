"""SpecAugment for CQT batches, vectorised over the batch (CoverHunter's ``spec_augmentation``).

Two reference transforms, each decided per sample with its own probability:

- ``random_erase: {prob, erase_num, region_size: [0.25, 0.1]}``: with probability ``prob``
  fill ``erase_num`` rectangles of ``region_size[0]`` of the frames × ``region_size[1]`` of
  the bins, each with a value drawn uniformly in (-80, 0] dB (``random() * -80``);
- ``roll_pitch: {prob, shift_num}``: with probability ``prob`` roll the bins axis by
  ``k * shift_num`` with ``k`` uniform in {-1, 0, 1} (a transposition by up to ``shift_num`` bins).

One csi addition, applied last:

- ``timbre: {prob, tilt_db, curve_db, knots}``: with probability ``prob`` add to every frame a
  random gain curve over the bins, in dB: a spectral tilt uniform in ±``tilt_db`` from the
  lowest to the highest bin plus a smooth curve through ``knots`` evenly spaced points, each
  uniform in ±``curve_db`` (linear in between). An equaliser, a different instrument's
  spectral envelope or a microphone colour the spectrum this way; the model learns to
  ignore it (feature-domain timbre augmentation).

Erased cells are addressed with ``arange``-built index tensors (one ``index_put_`` per
region, touching only the erased cells) and the roll is one ``gather``: there is no Python
loop over samples, frames or bins (only over the ``erase_num`` regions).
Random numbers are drawn from a ``torch.Generator`` on its own device and moved to the
batch's device, so the result depends only on the generator state, on any device. A single
sample ``(T, F)`` takes a cheaper path (slices and ``torch.roll``) with the same result::

    aug = SpecAugment.from_config({"random_erase": {"prob": 0.5, "erase_num": 4},
                                   "roll_pitch": {"prob": 0.5, "shift_num": 12}})
    feats = aug(feats, generator)          # (B, T, F) → (B, T, F), input left untouched
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

ERASE_KEYS = {"prob", "erase_num", "region_size"}
ROLL_KEYS = {"prob", "shift_num", "range"}
TIMBRE_KEYS = {"prob", "tilt_db", "curve_db", "knots"}
TOP_KEYS = {"random_erase", "roll_pitch", "timbre"}
ERASE_MIN_DB = -80.0


def _check_keys(section: str, cfg: Mapping[str, Any], allowed: set[str], required: set[str]) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"spec augment {section}: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(cfg))
    if missing:
        raise ValueError(f"spec augment {section}: missing key(s) {', '.join(missing)}")


def _check_prob(section: str, prob: Any) -> float:
    prob = float(prob)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"spec augment {section}: prob must be in [0, 1], got {prob}")
    return prob


class SpecAugment:
    """Batch SpecAugment (random erase, then pitch roll); see the module docstring."""

    def __init__(self, random_erase: Mapping[str, Any] | None = None,
                 roll_pitch: Mapping[str, Any] | None = None, timbre: Mapping[str, Any] | None = None):
        self.erase_prob = 0.0
        self.erase_num = 0
        self.region_size = (0.25, 0.1)
        if random_erase is not None:
            _check_keys("random_erase", random_erase, ERASE_KEYS, {"prob", "erase_num"})
            self.erase_prob = _check_prob("random_erase", random_erase["prob"])
            self.erase_num = int(random_erase["erase_num"])
            if self.erase_num < 0:
                raise ValueError(f"spec augment random_erase: erase_num must be >= 0, got {self.erase_num}")
            size = random_erase.get("region_size", self.region_size)
            if len(size) != 2 or not all(0.0 < float(s) <= 1.0 for s in size):
                raise ValueError(f"spec augment random_erase: region_size must be two fractions "
                                 f"in (0, 1], got {size!r}")
            self.region_size = (float(size[0]), float(size[1]))
        self.roll_prob = 0.0
        self.shift_num = 0
        self.roll_range = 1
        if roll_pitch is not None:
            _check_keys("roll_pitch", roll_pitch, ROLL_KEYS, {"prob", "shift_num"})
            self.roll_prob = _check_prob("roll_pitch", roll_pitch["prob"])
            self.shift_num = int(roll_pitch["shift_num"])
            self.roll_range = int(roll_pitch.get("range", 1))
            if self.roll_range < 1:
                raise ValueError(f"spec augment roll_pitch: range must be >= 1, got {self.roll_range}")

        self.timbre_prob, self.tilt_db, self.curve_db, self.knots = 0.0, 0.0, 0.0, 2
        if timbre is not None:
            _check_keys("timbre", timbre, TIMBRE_KEYS, {"prob"})
            self.timbre_prob = _check_prob("timbre", timbre["prob"])
            self.tilt_db = float(timbre.get("tilt_db", 12.0))
            self.curve_db = float(timbre.get("curve_db", 6.0))
            self.knots = int(timbre.get("knots", 6))
            if self.tilt_db < 0 or self.curve_db < 0 or self.knots < 2:
                raise ValueError(f"spec augment timbre: need tilt_db >= 0, curve_db >= 0 and knots >= 2, "
                                 f"got {self.tilt_db}, {self.curve_db}, {self.knots}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "SpecAugment":
        """Build from the reference's ``spec_augmentation`` section; unknown keys are an error."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - TOP_KEYS)
        if unknown:
            raise ValueError(f"spec augment: unknown key(s) {', '.join(unknown)} "
                             f"(allowed: {', '.join(sorted(TOP_KEYS))})")
        return cls(random_erase=cfg.get("random_erase"), roll_pitch=cfg.get("roll_pitch"), timbre=cfg.get("timbre"))

    @property
    def enabled(self) -> bool:
        return ((self.erase_prob > 0 and self.erase_num > 0) or (self.roll_prob > 0 and self.shift_num != 0)
                or (self.timbre_prob > 0 and (self.tilt_db > 0 or self.curve_db > 0)))

    def __repr__(self) -> str:
        return (f"SpecAugment(random_erase={{prob: {self.erase_prob}, erase_num: {self.erase_num}, "
                f"region_size: {list(self.region_size)}}}, roll_pitch={{prob: {self.roll_prob}, "
                f"shift_num: {self.shift_num}, range: {self.roll_range}}}, timbre={{prob: {self.timbre_prob}, "
                f"tilt_db: {self.tilt_db}, curve_db: {self.curve_db}, knots: {self.knots}}})")

    def __call__(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``feats`` (B, T, F), or one sample (T, F); returns a new tensor of the same
        shape and dtype. A (T, F) sample gives the same result as the (1, T, F) batch holding
        it, through a path with fewer tensor operations (for per-item use in data workers)."""
        if feats.dim() == 2:
            return self.augment_one(feats, generator)
        if feats.dim() != 3:
            raise ValueError(f"spec augment expects (B, T, F) or (T, F), got shape {tuple(feats.shape)}")
        out = feats
        if self.erase_prob > 0 and self.erase_num > 0:
            out = self.random_erase(out, generator)
        if self.roll_prob > 0 and self.shift_num != 0:
            out = self.roll_pitch(out, generator)
        if self.timbre_prob > 0:
            out = out + self._timbre_gains(out.shape[0], out.shape[2], generator, out.device).unsqueeze(1).to(out.dtype)
        return out if out is not feats else feats.clone()

    # -- random parameters (shared by the batch and the single-sample paths) -------------
    @staticmethod
    def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        gen_device = generator.device if generator is not None else torch.device("cpu")
        return torch.rand(n, generator=generator, device=gen_device).to(device)

    def _region_shape(self, t: int, f: int) -> tuple[int, int]:
        return min(t, max(1, int(t * self.region_size[0]))), min(f, max(1, int(f * self.region_size[1])))

    def _erase_params(self, b: int, t: int, f: int, generator: torch.Generator | None,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``selected`` (B,), region start frames and bins (R, B), fill values (R, B)."""
        height, width = self._region_shape(t, f)
        selected = self._rand(b, generator, device) < self.erase_prob
        draws = self._rand(3 * b * self.erase_num, generator, device).view(self.erase_num, 3, b)
        t0 = (draws[:, 0] * (t - height + 1)).long().clamp_(max=t - height)
        f0 = (draws[:, 1] * (f - width + 1)).long().clamp_(max=f - width)
        return selected, t0, f0, draws[:, 2] * ERASE_MIN_DB

    def _roll_shifts(self, b: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Bins to roll each sample by: ``k * shift_num`` with k uniform in {-range, ..., range}
        (the reference: range 1), 0 if not selected (B,). With ``shift_num: 1`` and
        ``range: 6`` this transposes by up to ±6 semitones, teaching key invariance."""
        selected = self._rand(b, generator, device) < self.roll_prob
        n = 2 * self.roll_range + 1
        k = (self._rand(b, generator, device) * n).long().clamp_(max=n - 1) - self.roll_range
        return k * self.shift_num * selected.long()

    def _timbre_gains(self, b: int, f: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """(B, F) gain curves in dB (tilt + piecewise-linear curve), 0 for unselected samples."""
        selected = self._rand(b, generator, device) < self.timbre_prob
        tilt = (self._rand(b, generator, device) * 2 - 1) * self.tilt_db
        knots = (self._rand(b * self.knots, generator, device).view(b, self.knots) * 2 - 1) * self.curve_db
        position = torch.linspace(0, 1, f, device=device)
        curve = torch.nn.functional.interpolate(knots.unsqueeze(1), size=f, mode="linear", align_corners=True)
        gains = tilt.view(b, 1) * (position - 0.5) + curve.squeeze(1)
        return gains * selected.view(b, 1)

    # -- batch path ------------------------------------------------------------------------
    def random_erase(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill ``erase_num`` rectangles per selected sample with a uniform value in (-80, 0].

        Each region is written with one ``index_put_`` of arange-built (sample, frame, bin)
        indices, touching only the erased cells; later regions overwrite earlier ones where
        they overlap, as in a sequential implementation.
        """
        b, t, f = feats.shape
        dev = feats.device
        height, width = self._region_shape(t, f)
        selected, t0, f0, values = self._erase_params(b, t, f, generator, dev)
        out = feats.clone()
        rows = torch.nonzero(selected).squeeze(1)                                  # (S,)
        s = rows.numel()
        if s == 0:
            return out
        shape = (self.erase_num, s, height, width)
        frame_index = (t0[:, rows].view(-1, s, 1, 1)
                       + torch.arange(height, device=dev).view(1, 1, height, 1)).expand(shape)
        bin_index = (f0[:, rows].view(-1, s, 1, 1)
                     + torch.arange(width, device=dev).view(1, 1, 1, width)).expand(shape)
        sample_index = rows.view(1, s, 1, 1).expand(shape)
        fill = values[:, rows].to(feats.dtype).view(-1, s, 1, 1).expand(shape)
        for r in range(self.erase_num):                                          # ≤ erase_num passes
            out.index_put_((sample_index[r], frame_index[r], bin_index[r]), fill[r])
        return out

    def roll_pitch(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Roll the bins of each selected sample by ``k * shift_num``, |k| <= range
        (``torch.roll`` semantics: ``out[..., i] = x[..., (i - shift) % F]``)."""
        b, t, f = feats.shape
        dev = feats.device
        shift = self._roll_shifts(b, generator, dev)                                # (B,)
        index = (torch.arange(f, device=dev).view(1, f) - shift.view(b, 1)) % f       # (B, F)
        return torch.gather(feats, 2, index.view(b, 1, f).expand(b, t, f))

    # -- single-sample path ------------------------------------------------------------------
    def augment_one(self, feat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment one sample (T, F) with the same random draws as a batch of one, using
        rectangle slices and ``torch.roll`` (few tensor operations: cheap per item)."""
        t, f = feat.shape
        out = feat.clone()
        if self.erase_prob > 0 and self.erase_num > 0:
            height, width = self._region_shape(t, f)
            selected, t0, f0, values = self._erase_params(1, t, f, generator, torch.device("cpu"))
            if bool(selected[0]):
                for a, c, v in zip(t0[:, 0].tolist(), f0[:, 0].tolist(), values[:, 0].tolist()):
                    out[a:a + height, c:c + width] = v
        if self.roll_prob > 0 and self.shift_num != 0:
            shift = int(self._roll_shifts(1, generator, torch.device("cpu"))[0])
            if shift:
                out = torch.roll(out, shift, dims=1)
        if self.timbre_prob > 0:
            out += self._timbre_gains(1, f, generator, torch.device("cpu"))[0].to(out.dtype)
        return out
