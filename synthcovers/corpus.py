"""Works with several versions in the music21 corpus, and their scores as plain note lists.

Three kinds of natural cover groups are found (:func:`discover`):

* ``chorale``: Bach chorales harmonizing the same melody: their sopranos' beat skeletons
  (pitches on the beats, so Bach's passing notes are ignored) share a run of 16 intervals
  (transposition-invariant); identical harmonizations are counted once.
* ``essen``: Essen folksong variants, IDs with letter suffixes (``A0004``, ``A0004A``...).
* ``folk``: tunes with the same normalised title in two or more of O'Neill's, Ryan's
  Mammoth, Aird's and the misc folk collections.

Discovery reads the MusicXML soprano with ElementTree and the ABC headers as text (a few
seconds, no music21 parse) and is cached as JSON; the folk kinds are checked lazily by
melodic similarity after a music21 parse (:func:`validate`). A *source* names one score:
``bach/bwv1.6.mxl`` or ``essenFolksong/altdeu10.abc:12`` (12th tune of the file); it is
read by :func:`synthcovers.extract.load_score`; the corpus files themselves by
:mod:`synthcovers.sources`.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import re
import tempfile
import zipfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from . import extract
from .extract import load_score
from .score import melody_intervals, similarity
from .sources import abc_tunes, corpus_root, read_text, satb_parts

CATALOG_VERSION = 3
CHORALE_RUN = 16  # shared beat-skeleton intervals that make two sopranos one melody
FOLK_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk")
KINDS = ("chorale", "essen", "folk")
MAX_MEMBERS = 8
SIM_THRESHOLD = {"essen": 0.45, "folk": 0.45}  # random tune pairs: 99th percentile ~0.4-0.44
_STEP = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_GENERIC_WORDS = re.compile(
    r"\b(the|a|an|reel|jig|hornpipe|strathspey|march|air|slow|no|set|dance|song|tune|polka|"
    r"waltz|quickstep|slip|double|single)\b")


@dataclass(frozen=True)
class Candidate:
    """A possible work: its kind, a key unique within the kind, a title and member sources."""

    kind: str
    key: str
    title: str
    members: tuple[str, ...]


# ---------------------------------------------------------------- music21 environment

def default_cache_dir() -> Path:
    """$CSI_MUSIC21_DIR, else $XDG_CACHE_HOME/csi/music21 (~/.cache/csi/music21)."""
    if os.environ.get("CSI_MUSIC21_DIR"):
        return Path(os.environ["CSI_MUSIC21_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "csi" / "music21"


def prepare_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Create the cache directory; fall back to a per-user temp directory if not writable."""
    path = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(path)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"csi-music21-{os.getuid() if hasattr(os, 'getuid') else 0}"
        path.mkdir(parents=True, exist_ok=True)
    return path


def configure_music21(cache_dir: Path) -> None:
    """Point music21's scratch directory (its parse cache) at ``cache_dir`` for this process
    only: the in-memory environment is changed, ~/.music21rc is neither read nor written.
    Extracted Scores are cached beside it (:func:`synthcovers.extract.set_score_cache`)."""
    from music21 import environment

    environment.Environment()["directoryScratch"] = str(cache_dir)
    extract.set_score_cache(Path(cache_dir) / f"csi_demo_scores_{_fingerprint()}_v{extract.SCORE_CACHE_VERSION}")


# ---------------------------------------------------------------- discovery

@lru_cache(maxsize=1)
def _fingerprint() -> str:
    root = corpus_root()
    h = hashlib.sha1(f"{CATALOG_VERSION} {CHORALE_RUN} {sorted(SIM_THRESHOLD.items())} "
                     f"{importlib.metadata.version('music21')}".encode())
    for sub in ("bach", "essenFolksong", *FOLK_COLLECTIONS):
        for entry in sorted(os.scandir(root / sub), key=lambda e: e.name):
            if entry.is_file():
                h.update(f"{sub}/{entry.name}:{entry.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def discover(cache_dir: Path) -> dict[str, list[Candidate]]:
    """Candidates of every kind plus ``single`` (chorales with one harmonization), sorted;
    read from ``cache_dir`` when a catalog for this corpus exists, else built and saved."""
    path = cache_dir / f"csi_demo_catalog_{_fingerprint()}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {k: [Candidate(c["kind"], c["key"], c["title"], tuple(c["members"])) for c in v]
                    for k, v in data.items()}
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache is rebuilt
    groups, singles = _chorale_groups()
    catalog = {"chorale": groups, "essen": _essen_groups(), "folk": _folk_groups(), "single": singles}
    _atomic_json(path, {k: [asdict(c) for c in v] for k, v in catalog.items()})
    return catalog


def exclusive(catalog: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
    """The catalog with every member score in one candidate only: a score listed by several
    (a folk tune under two titles) stays with the first, in kind then catalog order, so
    a work's members never depend on which other works were chosen."""
    seen: set[str] = set()
    out: dict[str, list[Candidate]] = {}
    for kind in (*KINDS, "single"):
        out[kind] = []
        for c in catalog[kind]:
            members = tuple(m for m in c.members if m not in seen)
            seen.update(members)
            if len(members) >= (1 if kind == "single" else 2):
                out[kind].append(Candidate(c.kind, c.key, c.title, members))
    return out


def _atomic_json(path: Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=0, sort_keys=True)
    os.replace(tmp, path)


def _read_musicxml(path: Path) -> ET.Element:
    if path.suffix == ".mxl":
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".xml") and not n.startswith("META-INF")]
            return ET.fromstring(z.read(names[0]))
    return ET.parse(path).getroot()


def _xml_parts(root: ET.Element) -> list[tuple[str, list[tuple[float, int, float]]]]:
    """(part name, [(onset, midi, duration)]) per part, ties merged, chords' lower notes and
    grace notes skipped: just enough MusicXML for a melody key."""
    names = {sp.get("id"): (sp.findtext("part-name") or "") for sp in root.iter("score-part")}
    parts = []
    for part in root.findall("part"):
        notes: list[list] = []
        t, div = 0.0, 1
        for measure in part.findall("measure"):
            for el in measure:
                if el.tag == "attributes" and el.findtext("divisions"):
                    div = int(el.findtext("divisions"))
                elif el.tag in ("backup", "forward"):
                    t += (-1 if el.tag == "backup" else 1) * int(el.findtext("duration")) / div
                elif el.tag == "note" and el.find("grace") is None and el.find("chord") is None:
                    dur = int(el.findtext("duration") or 0) / div
                    pitch = el.find("pitch")
                    if pitch is not None:
                        midi = (12 * (int(pitch.findtext("octave")) + 1) + _STEP[pitch.findtext("step")]
                                + int(float(pitch.findtext("alter") or 0)))
                        tied = any(x.get("type") == "stop" for x in el.findall("tie"))
                        if tied and notes and notes[-1][1] == midi:
                            notes[-1][2] += dur
                        else:
                            notes.append([t, midi, dur])
                    t += dur
        parts.append((names.get(part.get("id"), ""), [tuple(n) for n in notes]))
    return parts


def beat_skeleton_intervals(notes: list[tuple[float, int, float]]) -> tuple[int, ...]:
    """Intervals between the pitches sounding on beats (repeated pitches merged)."""
    pitches = []
    for onset, midi, dur in notes:
        if math.ceil(onset - 1e-6) < onset + dur - 1e-6 or dur >= 1:
            if not pitches or pitches[-1] != midi:
                pitches.append(midi)
    return tuple(b - a for a, b in zip(pitches, pitches[1:]))


def longest_common_run(a, b) -> int:
    """Length of the longest contiguous run shared by two sequences."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else 0)
        best = max(best, max(cur))
        prev = cur
    return best


def _chorale_groups() -> tuple[list[Candidate], list[Candidate]]:
    """Chorales whose soprano beat skeletons share a run of CHORALE_RUN intervals are one
    melody (connected components); a melody with two or more distinct harmonizations is a
    group, one with a single harmonization a ``single``."""
    root = corpus_root()
    skeleton: dict[str, tuple[int, ...]] = {}
    harmony: dict[str, str] = {}
    for path in sorted((root / "bach").iterdir(), key=lambda p: p.name):
        if not (path.name.startswith("bwv") and path.suffix in (".mxl", ".xml")):
            continue
        try:
            parts = satb_parts(_xml_parts(_read_musicxml(path)))
        except (ET.ParseError, IndexError, KeyError, ValueError, zipfile.BadZipFile):
            continue
        soprano = parts[0][1]
        if len(parts) < 4 or len(soprano) < 8:
            continue
        src, p0 = f"bach/{path.name}", soprano[0][1]
        skeleton[src] = beat_skeleton_intervals(soprano)
        harmony[src] = hashlib.sha1(repr([[(round(o, 3), m - p0, round(d, 3)) for o, m, d in p[1]]
                                          for p in parts]).encode()).hexdigest()
    # candidate pairs share a few interval 4-grams; confirm with the longest common run
    grams: dict[tuple, list[str]] = {}
    for src, sk in skeleton.items():
        for g in {sk[i:i + 4] for i in range(len(sk) - 3)}:
            grams.setdefault(g, []).append(src)
    shared: dict[tuple[str, str], int] = {}
    for srcs in grams.values():
        if len(srcs) <= 40:  # very common 4-grams (scale runs) say nothing
            for i, a in enumerate(srcs):
                for b in srcs[i + 1:]:
                    shared[(a, b)] = shared.get((a, b), 0) + 1
    parent = {src: src for src in skeleton}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), count in sorted(shared.items()):
        if count >= 3 and longest_common_run(skeleton[a], skeleton[b]) >= CHORALE_RUN:
            ra, rb = sorted((find(a), find(b)))
            parent[rb] = ra
    melodies: dict[str, dict[str, str]] = {}
    for src in sorted(skeleton, key=_natural):
        melodies.setdefault(find(src), {}).setdefault(harmony[src], src)
    groups, singles = [], []
    for harmonies in melodies.values():
        members = tuple(sorted(harmonies.values(), key=_natural))
        name = Path(members[0]).stem
        if len(members) >= 2:
            stems = ", ".join(Path(m).stem for m in members)
            groups.append(Candidate("chorale", name, f"Bach chorale melody ({stems})", members[:MAX_MEMBERS]))
        else:
            singles.append(Candidate("single", name, f"Bach chorale {name}", members))
    return sorted(groups, key=lambda c: _natural(c.key)), sorted(singles, key=lambda c: _natural(c.key))


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def _field(block: str, name: str) -> list[str]:
    return [v.strip() for v in re.findall(rf"^{name}:(.*)$", block, re.M)]


def _essen_groups() -> list[Candidate]:
    root = corpus_root()
    groups: dict[str, dict[str, tuple[str, str]]] = {}
    for path in sorted((root / "essenFolksong").glob("*.abc"), key=lambda p: p.name):
        if path.name.startswith("test"):
            continue
        for i, block in enumerate(abc_tunes(read_text(path)), 1):
            ids = [m for m in _field(block, "N") if re.fullmatch(r"[A-Z]+\d+[A-Z]*", m)]
            if ids:
                base = re.match(r"[A-Z]+\d+", ids[0]).group(0)
                title = (_field(block, "T") or [""])[0]
                groups.setdefault(base, {}).setdefault(ids[0], (f"essenFolksong/{path.name}:{i}", title))
    out = []
    for base, variants in groups.items():
        if len(variants) >= 2:
            ordered = sorted(variants.items(), key=lambda kv: (len(kv[0]), kv[0]))
            out.append(Candidate("essen", base, ordered[0][1][1] or base,
                                 tuple(src for _, (src, _) in ordered[:MAX_MEMBERS])))
    return sorted(out, key=lambda c: c.key)


def normalise_title(title: str) -> str:
    t = re.sub(r"[^a-z0-9 ]", " ", title.lower().replace("'", ""))
    return " ".join(_GENERIC_WORDS.sub(" ", t).split())


def _folk_groups() -> list[Candidate]:
    root = corpus_root()
    by_title: dict[str, list[tuple[int, str, str]]] = {}
    for c, coll in enumerate(FOLK_COLLECTIONS):
        for path in sorted((root / coll).glob("*.abc"), key=lambda p: p.name):
            for i, block in enumerate(abc_tunes(read_text(path)), 1):
                titles = _field(block, "T")
                for norm in dict.fromkeys(normalise_title(t) for t in titles):
                    if len(norm) >= 4:
                        by_title.setdefault(norm, []).append((c, f"{coll}/{path.name}:{i}", titles[0]))
    out, seen = [], set()
    for norm, tunes in sorted(by_title.items()):
        members = tuple(dict.fromkeys(src for _, src, _ in tunes))[:MAX_MEMBERS]
        if len({c for c, _, _ in tunes}) >= 2 and members not in seen:
            seen.add(members)
            out.append(Candidate("folk", norm, tunes[0][2], members))
    return out


# ---------------------------------------------------------------- validation

class Validator:
    """Keeps the members of an ABC candidate whose melodies resemble each other
    (normalised edit distance of the first 32 intervals), with a JSON cache of results."""

    def __init__(self, cache_dir: Path):
        self.path = cache_dir / f"csi_demo_validated_{_fingerprint()}.json"
        self.dirty = False
        try:
            self.known: dict[str, list[str]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.known = {}

    @staticmethod
    def key(cand: Candidate) -> str:
        return f"{cand.kind}/{cand.key}/{'|'.join(cand.members)}"

    def knows(self, cand: Candidate) -> bool:
        return cand.kind not in SIM_THRESHOLD or self.key(cand) in self.known

    def fetch(self, cands, mapper=map, progress=None) -> None:
        """Validate the candidates not known yet through ``mapper`` (``map``, or a worker
        pool's ``imap`` to run in parallel); ``progress`` wraps the result iterator."""
        todo = [c for c in dict.fromkeys(cands) if not self.knows(c)]
        results = mapper(validate, todo)
        if progress is not None:
            results = progress(results, total=len(todo))
        for c, kept in zip(todo, results):
            self.store(c, kept)
        self.save()

    def store(self, cand: Candidate, kept: tuple[str, ...]) -> None:
        self.known[self.key(cand)] = list(kept)
        self.dirty = True

    def __call__(self, cand: Candidate) -> tuple[str, ...]:
        if cand.kind not in SIM_THRESHOLD:
            return cand.members
        if self.key(cand) not in self.known:
            self.store(cand, validate(cand))
        return tuple(self.known[self.key(cand)])

    def save(self) -> None:
        if self.dirty:
            _atomic_json(self.path, self.known)
            self.dirty = False


def validate(cand: Candidate) -> tuple[str, ...]:
    """A greedy set of pairwise similar members (normalised edit similarity of the first 32
    intervals >= the kind's threshold), grown from each member in turn until it has two or
    more; () if none."""
    sigs: dict[str, list[int]] = {}
    for src in cand.members:
        try:
            melody = load_score(src).melody()
        except Exception:  # an unparsable tune is left out
            continue
        if len(melody) >= 8:
            sigs[src] = melody_intervals(melody)[:32]
    threshold = SIM_THRESHOLD.get(cand.kind, 0.0)
    for ref in sigs:
        kept = [ref]
        for s in sigs:
            if s != ref and all(similarity(sigs[k], sigs[s]) >= threshold for k in kept):
                kept.append(s)
        if len(kept) >= 2:
            return tuple(m for m in cand.members if m in kept)
    return ()
