"""csi.io.youtube and tools.download_youtube with a fake yt-dlp (executable on PATH, or module)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from csi.io import youtube
from csi.io.youtube import YoutubeError, download_all, finished_file, read_url_list
from tests.helpers import REPO

# A fake yt-dlp: "-o TEMPLATE URL"; URLs fake://ok/<id> write <id>.opus (after a .part),
# fake://gone/<id> fail like an unavailable video; every call is appended to $FAKE_LOG.
FAKE = r'''#!{python}
import os, sys, time
args = sys.argv[1:]
template, url = args[args.index("-o") + 1], args[-1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(f"{{time.monotonic()}}\t{{url}}\n")
kind, vid = url.split("//")[1].split("/")
if kind == "gone":
    print("ERROR: [youtube] " + vid + ": Video unavailable", file=sys.stderr)
    sys.exit(1)
path = template.replace("%(id)s", vid).replace("%(ext)s", "opus")
open(path + ".part", "wb").write(b"partial")
os.replace(path + ".part", path)
'''


@pytest.fixture
def fake_exe(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "yt-dlp"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setattr(youtube.importlib, "import_module", _no_module)
    return tmp_path / "calls.log"


def _no_module(name):
    raise ImportError(name)


def _calls(log):
    return [line.split("\t")[1] for line in log.read_text().splitlines()] if log.exists() else []


def test_resume_missing_list_and_part_files(tmp_path, fake_exe):
    out = tmp_path / "audio"
    out.mkdir()
    (out / "a.opus").write_bytes(b"done before")             # finished: kept, not downloaded again
    (out / "b.opus.part").write_bytes(b"interrupted")         # a .part is never taken as done
    items = [("a", "fake://ok/a"), ("b", "fake://ok/b"), ("c", "fake://gone/c"), ("d", "fake://ok/d")]
    s = download_all(items, out, jobs=2, rate_limit_s=0, progress=False, audio_format="")
    assert sorted(s.downloaded) == ["b", "d"] and s.kept == ["a"] and list(s.missing) == ["c"]
    assert (out / "a.opus").read_bytes() == b"done before"
    assert finished_file(out, "b").name == "b.opus" and (out / "b.opus").read_bytes() == b"partial"
    assert (out / "missing.txt").read_text() == "c\tERROR: [youtube] c: Video unavailable\n"
    assert sorted(_calls(fake_exe)) == ["fake://gone/c", "fake://ok/b", "fake://ok/d"]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    s = download_all(items, out, jobs=2, rate_limit_s=0, progress=False, audio_format="")   # resume: nothing to do
    assert sorted(s.kept) == ["a", "b", "d"] and s.skipped == ["c"] and list(s.missing) == ["c"]
    assert (out / "missing.txt").read_text() == "c\tERROR: [youtube] c: Video unavailable\n"
    assert len(_calls(fake_exe)) == 3
    (out / "missing.txt").write_text("c\tHTTP Error 503: Service Unavailable\n")
    s = download_all(items, out, jobs=2, rate_limit_s=0, progress=False, audio_format="")   # a transient reason: retried
    assert s.skipped == [] and list(s.missing) == ["c"] and len(_calls(fake_exe)) == 4
    s = download_all(items, out, progress=False, rate_limit_s=0, audio_format="", retry_missing=True)
    assert s.skipped == [] and len(_calls(fake_exe)) == 5


def test_rate_limit_spaces_the_starts(tmp_path, fake_exe):
    t0 = time.monotonic()
    download_all([(f"v{k}", f"fake://ok/v{k}") for k in range(3)], tmp_path / "o", jobs=3, rate_limit_s=0.3,
                 progress=False, audio_format="")
    assert time.monotonic() - t0 >= 0.6


def test_jobs_cap_and_bad_lists(tmp_path):
    for jobs in (0, 11, 50):
        with pytest.raises(YoutubeError, match="1 to 10.*banned"):
            download_all([], tmp_path, jobs=jobs)
    (tmp_path / "l.tsv").write_text("a\thttp://x\n\nb http://y\n")
    with pytest.raises(YoutubeError, match="l.tsv:3: expected id<TAB>url"):
        read_url_list(tmp_path / "l.tsv")
    (tmp_path / "l.tsv").write_text("a\thttp://x\na\thttp://y\n")
    with pytest.raises(YoutubeError, match="repeated"):
        read_url_list(tmp_path / "l.tsv")


def test_no_yt_dlp_names_pip_install(tmp_path, monkeypatch):
    monkeypatch.setattr(youtube.importlib, "import_module", _no_module)
    monkeypatch.setattr(youtube.shutil, "which", lambda name: None)
    with pytest.raises(YoutubeError, match="pip install yt-dlp"):
        download_all([("a", "fake://ok/a")], tmp_path / "o", progress=False)
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "a.opus").write_bytes(b"x")            # nothing to do: no yt-dlp needed
    assert download_all([("a", "fake://ok/a")], tmp_path / "o2", progress=False).kept == ["a"]


def test_module_backend_is_preferred(tmp_path, monkeypatch):
    pkg = tmp_path / "mods" / "yt_dlp"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import os\n"
        "class YoutubeDL:\n"
        "    def __init__(self, options): self.options = options\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *a): return False\n"
        "    def download(self, urls):\n"
        "        vid = urls[0].rsplit('/', 1)[1]\n"
        "        if 'gone' in urls[0]: raise RuntimeError('ERROR: ' + vid + ': Private video')\n"
        "        ext = self.options['postprocessors'][0]['preferredcodec']\n"
        "        open(self.options['outtmpl'].replace('%(id)s', vid).replace('%(ext)s', ext), 'wb').write(b'm')\n"
        "        return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.setattr(youtube.shutil, "which", lambda name: None)
    s = download_all([("x", "fake://ok/x"), ("y", "fake://gone/y")], tmp_path / "o", jobs=1, rate_limit_s=0,
                     progress=False, audio_format="opus")
    assert (tmp_path / "o" / "x.opus").read_bytes() == b"m"
    assert s.missing == {"y": "ERROR: y: Private video"}


def _tool(argv, tmp_path, path_prefix=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", FAKE_LOG=str(tmp_path / "calls.log"))
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "tools.download_youtube", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_tool(tmp_path, fake_exe):
    (tmp_path / "list.tsv").write_text("a\tfake://ok/a\nb\tfake://gone/b\n")
    r = _tool(["list.tsv", "--out_dir", "audio", "--rate_limit_s", "0", "--no_progress", "--audio_format", ""],
              tmp_path, path_prefix=tmp_path / "bin")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "audio" / "a.opus").is_file() and (tmp_path / "audio" / "download_youtube.yaml").is_file()
    assert (tmp_path / "audio" / "missing.txt").read_text().startswith("b\t")
    assert "1 downloaded, 0 already there, 1 missing" in r.stderr
    r = _tool(["list.tsv", "--out_dir", "audio", "--jobs", "11"], tmp_path)
    assert r.returncode == 2 and "banned" in r.stderr
