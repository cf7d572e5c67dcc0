"""Build the demo corpus: choose works, render their versions in parallel, write manifests.

Every random choice comes from ``np.random.default_rng([seed, ...])``: work selection from
``[seed, SELECT]``, a work's shared choices from ``[seed, work]`` and a version's from
``[seed, work, version]``, so the output does not depend on ``nj`` or on caches.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csi.io.manifest import query_ref_split, write_manifest

from . import arrange, corpus, extract, render
from .score import Performance

SELECT = 7  # second seed word of the work-selection generator
NOISES = ("white", "pink")


class NotEnoughWorks(ValueError):
    """More works were asked for than the corpus can provide."""


@dataclass(frozen=True)
class WorkSpec:
    index: int
    work_id: str
    kind: str
    title: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    out: str
    seed: int
    sr: int = 22050
    min_versions: int = 2
    max_versions: int = 4
    max_dur: float = 90.0
    min_dur: float = 20.0


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# ---------------------------------------------------------------- selection

def select_works(catalog: dict[str, list[corpus.Candidate]], n: int, seed: int,
                 validate=corpus.validate, prefetch=None) -> list[WorkSpec]:
    """``n`` works: the kinds take turns (chorale, essen, folk), each in a seeded shuffled
    order, candidates whose members fail the similarity check or were used are skipped;
    single chorales (versions = arrangements of one score) fill in when groups run out."""
    upper = sum(len(catalog[k]) for k in (*corpus.KINDS, "single"))
    if n > upper:
        raise NotEnoughWorks(f"--works {n}: the music21 corpus has at most {upper} candidate works "
                             f"({', '.join(f'{len(catalog[k])} {k}' for k in (*corpus.KINDS, 'single'))})")
    rng = np.random.default_rng([seed, SELECT])
    queues = {k: [catalog[k][i] for i in rng.permutation(len(catalog[k]))] for k in (*corpus.KINDS, "single")}
    if prefetch is not None:  # validate the likely candidates in parallel first
        ahead = (n + 2) // 3 * 2 + 4
        prefetch([c for k in corpus.KINDS for c in queues[k][:ahead]])
    works: list[WorkSpec] = []
    used: set[str] = set()
    turn = 0
    while len(works) < n and any(queues[k] for k in corpus.KINDS):
        kind = corpus.KINDS[turn % len(corpus.KINDS)]
        turn += 1
        while queues[kind]:  # this kind's next usable candidate
            cand = queues[kind].pop(0)
            members = tuple(m for m in validate(cand) if m not in used)
            if len(members) >= 2:
                works.append(WorkSpec(len(works), _work_id(kind, cand.key, works), kind, cand.title, members))
                used.update(members)
                break
    for cand in queues["single"]:
        if len(works) >= n:
            break
        works.append(WorkSpec(len(works), _work_id("single", cand.key, works), "single", cand.title, cand.members))
    if len(works) < n:
        raise NotEnoughWorks(f"--works {n}: only {len(works)} works can be built from the music21 corpus")
    return works


def _work_id(kind: str, key: str, works: list[WorkSpec]) -> str:
    """``<kind>-<slug>``, made unique with the work index if the slug was taken."""
    work_id = f"{kind}-{slug(key)}"
    return work_id if all(w.work_id != work_id for w in works) else f"{work_id}-{len(works)}"


# ---------------------------------------------------------------- one work

@dataclass
class Version:
    """One version of a work before rendering."""

    version_id: str
    source: str
    performance: Performance
    info: dict
    rng: np.random.Generator  # the version's generator, for the mix stage


def arrange_work(spec: WorkSpec, cfg: Settings) -> list[Version]:
    """The versions of ``spec``: how many, which member score each plays, and their
    arrangements (distinct keys and tempi drawn per work, the rest per version)."""
    wrng = np.random.default_rng([cfg.seed, spec.index])
    n_versions = int(wrng.integers(cfg.min_versions, cfg.max_versions + 1))
    order = [int(i) for i in wrng.permutation(len(spec.members))]
    choices = arrange.work_choices(wrng, n_versions)
    versions = []
    for v in range(n_versions):
        source = spec.members[order[v % len(order)]]
        vrng = np.random.default_rng([cfg.seed, spec.index, v])
        perf, info = arrange.arrange(extract.load_score(source), choices[v], vrng,
                                     chorale=source.startswith("bach/"), max_dur=cfg.max_dur,
                                     min_dur=cfg.min_dur)
        versions.append(Version(f"v{v}", source, perf, info, vrng))
    return versions


def build_work(spec: WorkSpec, cfg: Settings) -> list[dict]:
    """Render every version of ``spec``; returns its manifest records (version order)."""
    records = []
    for ver in arrange_work(spec, cfg):
        vrng = ver.rng
        gain_db = round(float(vrng.uniform(-12.0, 0.0)), 2)
        noisy = bool(vrng.random() < 0.5)
        snr_db = round(float(vrng.uniform(10.0, 35.0)), 1) if noisy else None
        noise = str(vrng.choice(NOISES)) if noisy else "none"
        audio = render.finish(render.synthesize(ver.performance, cfg.sr), cfg.sr, gain_db, snr_db, noise, vrng)
        wav = os.path.join(cfg.out, "audio", spec.work_id, f"{ver.version_id}.flac")
        render.write_flac(wav, audio, cfg.sr)
        records.append({
            "utt": f"{spec.work_id}-{ver.version_id}", "wav": wav, "dur_s": round(len(audio) / cfg.sr, 3),
            "song": spec.work_id, "version": ver.version_id, "title": spec.title, "kind": spec.kind,
            "source": ver.source, **ver.info, "gain_db": gain_db, "noise": noise, "snr_db": snr_db,
            "sr": cfg.sr,
        })
    return records


# ---------------------------------------------------------------- worker pool

_CFG: Settings | None = None


def _init_worker(cache_dir: str, cfg: Settings) -> None:
    global _CFG
    _CFG = cfg
    corpus.configure_music21(Path(cache_dir))


def _build(spec: WorkSpec) -> list[dict]:
    return build_work(spec, _CFG)


def _validate(cand: corpus.Candidate) -> tuple[str, ...]:
    return corpus.validate(cand)


def settings(out: str, seed: int, sr: int = 22050, min_versions: int = 2, max_versions: int = 4,
             max_dur: float = 90.0) -> Settings:
    return Settings(out=out, seed=seed, sr=sr, min_versions=min_versions, max_versions=max_versions,
                    max_dur=max_dur, min_dur=min(20.0, max_dur / 2))


def choose_works(works: int, seed: int, cache_dir: str | os.PathLike | None = None,
                 pool=None) -> tuple[list[WorkSpec], dict]:
    """Discover the corpus (cached) and select ``works`` works; validation of candidates
    runs in ``pool`` when given. Returns the works and the catalog."""
    cache = corpus.prepare_cache_dir(cache_dir)
    corpus.configure_music21(cache)
    catalog = corpus.discover(cache)
    validator = corpus.Validator(cache)

    def prefetch(cands):
        todo = [c for c in cands if c.kind in corpus.SIM_THRESHOLD and validator.key(c) not in validator.known]
        for c, kept in zip(todo, pool.imap(_validate, todo)):
            validator.store(c, kept)

    try:
        specs = select_works(catalog, works, seed, validator, prefetch if pool is not None else None)
    finally:
        validator.save()
    return specs, catalog


def make_synth_covers(out: str, works: int, seed: int, nj: int = 1, min_versions: int = 2,
                      max_versions: int = 4, sr: int = 22050, max_dur: float = 90.0,
                      cache_dir: str | None = None, progress: bool = True) -> dict:
    """Build the corpus in ``out`` (see module doc); returns a summary dict."""
    from tqdm import tqdm

    cfg = settings(out, seed, sr=sr, min_versions=min_versions, max_versions=max_versions, max_dur=max_dur)
    cache = corpus.prepare_cache_dir(cache_dir)
    pool = None
    if nj > 1:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        pool = ctx.Pool(nj, initializer=_init_worker, initargs=(str(cache), cfg))
    try:
        specs, catalog = choose_works(works, seed, cache, pool)
        if pool is None:
            _init_worker(str(cache), cfg)
            results = map(_build, specs)
        else:
            results = pool.imap(_build, specs)
        records: list[dict] = []
        for recs in tqdm(results, total=len(specs), desc="make_synth_covers", unit="work", disable=not progress):
            records.extend(recs)
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    write_manifest(os.path.join(out, "dataset.txt"), records)
    queries, refs = query_ref_split(records)
    write_manifest(os.path.join(out, "query.txt"), queries)
    write_manifest(os.path.join(out, "ref.txt"), refs)
    kinds: dict[str, int] = {}
    for s in specs:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    return {
        "works": len(specs), "tracks": len(records), "works_by_kind": kinds,
        "audio_minutes": round(sum(r["dur_s"] for r in records) / 60, 2),
        "candidates": {k: len(v) for k, v in catalog.items()}, "cache_dir": str(cache),
    }
