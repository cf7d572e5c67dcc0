"""Build the demo corpus: choose works, split them, render their versions in parallel,
write manifests.

Split: every work belongs to ``train``, ``val`` or ``test`` by a hash of its id
(:func:`work_split`), so a work keeps its split whatever ``--works`` or ``--seed`` is.
Train works are rendered through the *train* timbre pool (instruments, effects, noises),
val and test works through the *held-out* pool, which shares nothing with it: the test
measures identification across timbres never seen in training, and val is the matched
development set of that test. Two more kinds of work: generated train works
(``generated_works``, :mod:`synthcovers.generate`, fitted on the train works only) and the
hard test split ``test_hard``: the test works rendered again with every version in a
different key (written to ``test_hard.txt``, beside ``dataset.txt``). How versions differ
is drawn from :class:`synthcovers.covers.CoverStats`.

Every random choice comes from ``np.random.default_rng([seed, ...])``: work selection from
``[seed, SELECT]``, a work's shared choices from ``[seed, h]`` and a version's from
``[seed, h, version]``, with ``h`` a hash of the work id, so the output does not depend on
``nj`` or on caches, and a work is rendered the same whatever else was chosen (the hard
split's renderings add the word ``HARD``; generated works depend on the train works they
are fitted on).
"""
from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from csi.io.manifest import query_ref_split, write_manifest

from . import arrange, corpus, covers, effects, extract, generate, render
from .score import Performance, Score

SELECT = 7  # second seed word of the work-selection generator
HARD = 13  # seed word of the hard test split's renderings
SPLITS = ("train", "val", "test")
HARD_SPLIT = "test_hard"  # the test works again, every version in a different key
ALL_SPLITS = (*SPLITS, HARD_SPLIT)
FETCH_AHEAD = 16  # candidates validated together (in parallel) when selection needs one
NOISE_PROB = 0.5


class NotEnoughWorks(ValueError):
    """More works were asked for than the corpus can provide."""


class SplitError(ValueError):
    """A split asked for (fraction > 0) ends up empty or with a single work."""


@dataclass(frozen=True)
class WorkSpec:
    index: int
    work_id: str
    kind: str
    title: str
    members: tuple[str, ...]
    split: str = "train"
    scores: tuple[Score, ...] = ()  # the member scores of a generated work (others are read from music21)

    @property
    def pool(self) -> str:
        return pool_of(self.split)

    def score_of(self, source: str) -> Score:
        for score in self.scores:
            if score.source == source:
                return score
        return extract.load_score(source)


@dataclass(frozen=True)
class Settings:
    out: str
    seed: int
    sr: int = 16000
    min_versions: int = 2
    max_versions: int = 4
    train_versions: tuple[int, int] = (4, 8)
    max_dur: float = 60.0
    min_dur: float = 20.0
    stats: covers.CoverStats = field(default_factory=covers.CoverStats)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _unit_hash(text: str) -> float:
    """A number in [0, 1) from the SHA-1 of ``text`` (52 bits, exact in a float)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:13], 16) / 16 ** 13


def work_split(work_id: str, val_fraction: float = 0.1, test_fraction: float = 0.2) -> str:
    """``test`` if sha1(work_id) in [0, 1) falls below ``test_fraction``, ``val`` below
    ``test_fraction + val_fraction``, else ``train``: fixed per work, whatever was chosen."""
    u = _unit_hash(work_id)
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def pool_of(split: str) -> str:
    """The timbre pool of a split: train works use ``train``, val and test ``heldout``."""
    return "train" if split == "train" else "heldout"


def work_ids(catalog: dict[str, list[corpus.Candidate]]) -> dict[tuple[str, str], str]:
    """``<kind>-<slug of key>`` per candidate, with a hash of the key appended where two
    slugs collide; depends on the catalog only."""
    plain: dict[str, int] = {}
    for kind, cands in catalog.items():
        for c in cands:
            plain[f"{kind}-{slug(c.key)}"] = plain.get(f"{kind}-{slug(c.key)}", 0) + 1
    out = {}
    for kind, cands in catalog.items():
        for c in cands:
            wid = f"{kind}-{slug(c.key)}"
            out[(kind, c.key)] = wid if plain[wid] == 1 else f"{wid}-{hashlib.sha1(c.key.encode()).hexdigest()[:6]}"
    return out


def split_quotas(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Works per split for ``--works n``: the rounded fractions, at least 2 for a split
    whose fraction is > 0 (one work cannot be searched for); train takes the rest."""
    test = max(2, round(n * test_fraction)) if test_fraction > 0 else 0
    val = max(2, round(n * val_fraction)) if val_fraction > 0 else 0
    return {"train": max(0, n - val - test), "val": val, "test": test}


def check_splits(specs: list["WorkSpec"], val_fraction: float, test_fraction: float, asked: str) -> None:
    """SplitError naming the first split asked for (fraction > 0) with fewer than 2 works:
    an empty split, or one work whose versions can only retrieve each other."""
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    for split in SPLITS:
        if fractions[split] > 1e-9:
            count = sum(s.split == split for s in specs)
            if count < 2:
                option = "" if split == "train" else f" (--{split}_fraction {fractions[split]:g})"
                raise SplitError(f"split {split!r}{option} has {count} work{'s' if count != 1 else ''} with {asked}: "
                                 f"it needs at least 2; ask for more works, a larger fraction, or 0 to leave "
                                 f"the split out")


# ---------------------------------------------------------------- selection

def select_works(catalog: dict[str, list[corpus.Candidate]], n: int | None, seed: int,
                 validate=corpus.validate, fetch=None, val_fraction: float = 0.1,
                 test_fraction: float = 0.2) -> list[WorkSpec]:
    """``n`` works (None: every usable one) split by :func:`work_split`, ``n`` in the
    proportions of the fractions. Within a split the kinds take turns (chorale, essen,
    folk), each in a seeded shuffled order; candidates whose members fail the similarity
    check are skipped; single chorales (versions = arrangements of one score) fill in
    when groups run out. ``fetch(cands)`` validates candidates ahead (in parallel)."""
    catalog = corpus.exclusive(catalog)
    everything = (*corpus.KINDS, "single")
    upper = sum(len(catalog[k]) for k in everything)
    if n is not None and n > upper:
        raise NotEnoughWorks(f"--works {n}: the music21 corpus has at most {upper} candidate works "
                             f"({', '.join(f'{len(catalog[k])} {k}' for k in everything)})")
    ids = work_ids(catalog)
    split_of = {key: work_split(wid, val_fraction, test_fraction) for key, wid in ids.items()}
    rng = np.random.default_rng([seed, SELECT])
    order = {k: [catalog[k][i] for i in rng.permutation(len(catalog[k]))] for k in everything}
    if n is None:
        quotas = {s: math.inf for s in SPLITS}
        if fetch is not None:
            fetch([c for k in corpus.KINDS for c in order[k]])
    else:
        quotas = split_quotas(n, val_fraction, test_fraction)
    works: list[WorkSpec] = []
    for split in SPLITS:
        queues = {k: [c for c in order[k] if split_of[(k, c.key)] == split] for k in everything}
        chosen: list[WorkSpec] = []

        def add(kind: str, cand: corpus.Candidate, members: tuple[str, ...]) -> None:
            chosen.append(WorkSpec(0, ids[(kind, cand.key)], kind, cand.title, members, split))

        turn = 0
        while len(chosen) < quotas[split] and any(queues[k] for k in corpus.KINDS):
            kind = corpus.KINDS[turn % len(corpus.KINDS)]
            turn += 1
            while queues[kind]:  # this kind's next usable candidate
                cand = queues[kind].pop(0)
                if fetch is not None and not getattr(validate, "knows", lambda c: True)(cand):
                    fetch([cand] + queues[kind][:FETCH_AHEAD - 1])
                members = tuple(validate(cand))
                if len(members) >= 2:
                    add(kind, cand, members)
                    break
        for cand in queues["single"]:
            if len(chosen) >= quotas[split]:
                break
            add("single", cand, cand.members)
        if n is not None and len(chosen) < quotas[split]:
            raise NotEnoughWorks(
                f"--works {n}: the {split} split needs {quotas[split]} works but the music21 corpus "
                f"has only {len(chosen)} usable ones whose id hashes to {split}; ask for fewer, or "
                f"--works all for every usable work")
        works += chosen
    return [WorkSpec(i, w.work_id, w.kind, w.title, w.members, w.split) for i, w in enumerate(works)]


# ---------------------------------------------------------------- one work

@dataclass
class Version:
    """One version of a work before rendering."""

    version_id: str
    source: str
    performance: Performance
    info: dict
    rng: np.random.Generator  # the version's generator, for the mix stage


def _work_seed(spec: WorkSpec) -> int:
    return int(hashlib.sha1(spec.work_id.encode("utf-8")).hexdigest()[:8], 16)


def n_versions_range(spec: WorkSpec, cfg: Settings) -> tuple[int, int]:
    return cfg.train_versions if spec.split == "train" else (cfg.min_versions, cfg.max_versions)


def arrange_work(spec: WorkSpec, cfg: Settings) -> list[Version]:
    """The versions of ``spec``: how many, which member score each plays (in turn, so
    members are reused when there are more versions), and their arrangements (keys and
    tempi drawn per work from ``cfg.stats``, every key distinct in the hard test split;
    the rest per version) through the split's pool."""
    h = _work_seed(spec)
    hard = [HARD] if spec.split == HARD_SPLIT else []
    wrng = np.random.default_rng([cfg.seed, h, *hard])
    lo, hi = n_versions_range(spec, cfg)
    n_versions = int(wrng.integers(lo, hi + 1))
    order = [int(i) for i in wrng.permutation(len(spec.members))]
    choices = arrange.work_choices(wrng, n_versions, spec.pool, cfg.stats, "distinct" if hard else "realistic")
    versions = []
    for v in range(n_versions):
        source = spec.members[order[v % len(order)]]
        vrng = np.random.default_rng([cfg.seed, h, v, *hard])
        perf, info = arrange.arrange(spec.score_of(source), choices[v], vrng,
                                     chorale=source.startswith("bach/"), max_dur=cfg.max_dur,
                                     min_dur=cfg.min_dur, stats=cfg.stats)
        versions.append(Version(f"{'k' if hard else 'v'}{v}", source, perf, info, vrng))
    return versions


def build_work(spec: WorkSpec, cfg: Settings) -> list[dict]:
    """Render every version of ``spec``; returns its manifest records (version order)."""
    records = []
    for ver in arrange_work(spec, cfg):
        vrng = ver.rng
        gain_db = round(float(vrng.uniform(-12.0, 0.0)), 2)
        chain = effects.draw_chain(spec.pool, vrng, cfg.sr)
        noisy = bool(vrng.random() < NOISE_PROB)
        snr_db = round(float(vrng.uniform(10.0, 35.0)), 1) if noisy else None
        noise = str(vrng.choice(effects.NOISES[spec.pool])) if noisy else "none"
        audio, noise_params = render.finish(render.synthesize(ver.performance, cfg.sr), cfg.sr, gain_db,
                                            chain, snr_db, noise, vrng)
        wav = os.path.join(cfg.out, "audio", spec.work_id, f"{ver.version_id}.flac")
        render.write_flac(wav, audio, cfg.sr)
        records.append({
            "utt": f"{spec.work_id}-{ver.version_id}", "wav": wav, "dur_s": round(len(audio) / cfg.sr, 3),
            "song": spec.work_id, "version": ver.version_id, "split": spec.split, "title": spec.title,
            "kind": spec.kind, "source": ver.source, **ver.info, "effects": chain, "gain_db": gain_db,
            "noise": noise, "snr_db": snr_db, **({"noise_params": noise_params} if noise_params else {}),
            "sr": cfg.sr,
        })
    return records


# ---------------------------------------------------------------- worker pool

_CFG: Settings | None = None


def _init_worker(cache_dir: str, cfg: Settings | None) -> None:
    global _CFG
    _CFG = cfg
    corpus.configure_music21(Path(cache_dir))


def _build(spec: WorkSpec) -> list[dict]:
    return build_work(spec, _CFG)


def settings(out: str, seed: int, sr: int = 16000, min_versions: int = 2, max_versions: int = 4,
             max_dur: float = 60.0, train_versions: tuple[int, int] = (4, 8)) -> Settings:
    return Settings(out=out, seed=seed, sr=sr, min_versions=min_versions, max_versions=max_versions,
                    train_versions=tuple(train_versions), max_dur=max_dur, min_dur=min(20.0, max_dur / 2))


def choose_works(works: int | None, seed: int, cache_dir: str | os.PathLike | None = None, pool=None,
                 val_fraction: float = 0.1, test_fraction: float = 0.2,
                 progress: bool = False) -> tuple[list[WorkSpec], dict]:
    """Discover the corpus (cached) and select ``works`` works (None: all); validation of
    candidates runs in ``pool`` when given. Returns the works and the catalog."""
    from csi.utils import progress_bar

    cache = corpus.prepare_cache_dir(cache_dir)
    corpus.configure_music21(cache)
    catalog = corpus.discover(cache)
    validator = corpus.Validator(cache)
    mapper = map if pool is None else pool.imap
    bar = (lambda it, total: progress_bar(it, total=total, desc="validate", unit="cand", disable=not progress or total < 32))

    def fetch(cands):
        validator.fetch(cands, mapper, bar)

    try:
        specs = select_works(catalog, works, seed, validator, fetch, val_fraction, test_fraction)
    finally:
        validator.save()
    return specs, catalog


def with_generated(specs: list[WorkSpec], n: int, seed: int) -> list[WorkSpec]:
    """``specs`` plus ``n`` generated train works (:mod:`synthcovers.generate`), fitted on the
    train works of ``specs`` only."""
    if n <= 0:
        return specs
    model = generate.fit([s for s in specs if s.split == "train"])
    extra = [WorkSpec(0, wid, generate.KIND, members[0].title, tuple(m.source for m in members), "train", members)
             for wid, members in generate.generate_works(model, n, seed)]
    return reindex(specs + extra)


def with_hard_test(specs: list[WorkSpec]) -> list[WorkSpec]:
    """``specs`` plus each test work again in the hard split (:data:`HARD_SPLIT`)."""
    return reindex(specs + [replace(s, split=HARD_SPLIT) for s in specs if s.split == "test"])


def reindex(specs: list[WorkSpec]) -> list[WorkSpec]:
    return [replace(s, index=i) for i, s in enumerate(specs)]


def make_synth_covers(out: str, works: int | None, seed: int, nj: int = 1, min_versions: int = 2,
                      max_versions: int = 4, sr: int = 16000, max_dur: float = 60.0,
                      cache_dir: str | None = None, progress: bool = True, val_fraction: float = 0.1,
                      test_fraction: float = 0.2, train_versions: tuple[int, int] = (4, 8),
                      generated_works: int = 0, hard_test: bool = True) -> dict:
    """Build the corpus in ``out`` (see module doc); returns a summary dict. Raises
    NotEnoughWorks or SplitError (before rendering anything) when the works asked for
    cannot be provided or split, and generate.LeakageError when generated works cannot be
    fitted on train works alone."""
    from csi.utils import progress_bar

    cfg = settings(out, seed, sr=sr, min_versions=min_versions, max_versions=max_versions, max_dur=max_dur,
                   train_versions=train_versions)
    cache = corpus.prepare_cache_dir(cache_dir)
    pool = None
    if nj > 1:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        pool = ctx.Pool(nj, initializer=_init_worker, initargs=(str(cache), cfg))
    timing = {}
    try:
        t0 = time.time()
        specs, catalog = choose_works(works, seed, cache, pool, val_fraction, test_fraction, progress)
        check_splits(specs, val_fraction, test_fraction, f"--works {works if works is not None else 'all'}")
        specs = with_generated(specs, generated_works, seed)
        specs = with_hard_test(specs) if hard_test else specs
        timing["select_s"] = round(time.time() - t0, 1)
        t0 = time.time()
        if pool is None:
            _init_worker(str(cache), cfg)
            results = map(_build, specs)
        else:
            results = pool.imap(_build, specs)
        records: list[dict] = []
        for recs in progress_bar(results, total=len(specs), desc="make_synth_covers", unit="work", disable=not progress):
            records.extend(recs)
        timing["render_s"] = round(time.time() - t0, 1)
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    main = [r for r in records if r["split"] != HARD_SPLIT]
    write_manifest(os.path.join(out, "dataset.txt"), main)
    if len(main) < len(records):  # its works are the test works: a manifest of its own
        write_manifest(os.path.join(out, f"{HARD_SPLIT}.txt"), [r for r in records if r["split"] == HARD_SPLIT])
    queries, refs = query_ref_split(main)
    write_manifest(os.path.join(out, "query.txt"), queries)
    write_manifest(os.path.join(out, "ref.txt"), refs)
    return summarize(specs, records, catalog, cache, timing, cfg.stats)


def summarize(specs: list[WorkSpec], records: list[dict], catalog: dict, cache: Path, timing: dict,
              stats: covers.CoverStats) -> dict:
    def count(items, key) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in items:
            out[key(item)] = out.get(key(item), 0) + 1
        return out

    minutes: dict[str, float] = {}
    for r in records:
        minutes[r["split"]] = minutes.get(r["split"], 0.0) + r["dur_s"] / 60
    distinct = [w for w in specs if w.split != HARD_SPLIT]
    return {
        "works": len(distinct), "tracks": len(records),
        "works_by_kind": count(distinct, lambda s: s.kind),
        "works_by_split": {s: n for s, n in ((s, sum(w.split == s for w in specs)) for s in ALL_SPLITS) if n},
        "works_by_split_and_kind": {s: count([w for w in specs if w.split == s], lambda w: w.kind)
                                    for s in ALL_SPLITS if any(w.split == s for w in specs)},
        "tracks_by_split": {s: n for s, n in ((s, sum(r["split"] == s for r in records)) for s in ALL_SPLITS)
                            if n},
        "cover_statistics": {"drawn_from": covers.describe(stats),
                             "measured": {s: covers.measure([r for r in records if r["split"] == s])
                                          for s in ALL_SPLITS if any(r["split"] == s for r in records)}},
        "audio_minutes": round(sum(r["dur_s"] for r in records) / 60, 2),
        "audio_minutes_by_split": {s: round(m, 2) for s, m in minutes.items()},
        "candidates": {k: len(v) for k, v in catalog.items()}, "cache_dir": str(cache),
        "seconds": timing,
    }
