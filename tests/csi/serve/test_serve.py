"""The identify service (csi.serve, tools.serve_identify) over HTTP on 127.0.0.1, on a tiny
random-weight model and index: answers like tools.identify's with offsets and a plot, raw
and multipart uploads, bad uploads refused with the reason while it goes on serving, a
bounded load test, the tool as a process, and the page in headless Chromium."""
from __future__ import annotations

import concurrent.futures
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import csi
from csi.serve import IdentifyService, ServeOptions, ServingIdentifier, make_server, serve_in_thread
from csi.serve.page import RESULTS_BACKGROUND
from csi.serve.plot import best_pair_s
from tests.bench.index import make_model_dir, tone_audio
from tests.helpers import REPO
from tools import build_index

TINY_MODEL = {"input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
              "ce": {"output_dims": 4}}
TINY_TRAIN = {"train_path": "x", "chunk_frame": [100], "mean_size": 2, "m_per_class": 2, "batch_size": 4}
SR = 16000
LIMITS = ServeOptions(max_bytes=3 << 20, max_seconds=20.0, topk=2, max_topk=4, plots_kept=8)


def wav_bytes(y: np.ndarray, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, y, SR, subtype=subtype, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A random-weight tiny model, 4 recordings of 2 works (13 s: chunks at 0 and 5 s) and their index."""
    root = tmp_path_factory.mktemp("serve")
    model_dir = make_model_dir(root / "model", TINY_MODEL, TINY_TRAIN)
    records = []
    for w in range(2):
        for v in range(2):
            path = root / f"w{w}v{v}.wav"
            sf.write(path, tone_audio(13, SR, seed=10 * w + v), SR, subtype="PCM_16")
            records.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}", "dur_s": 13.0})
    (root / "refs.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert build_index.main([str(model_dir), str(root / "refs.txt"), str(root / "index"), "--no_progress"]) == 0
    return root, records


@pytest.fixture(scope="module")
def server(built):
    root, _ = built
    service = IdentifyService(ServingIdentifier(root / "index"), LIMITS)
    srv = make_server(service, "127.0.0.1", 0)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 60):
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post_audio(base: str, data: bytes, query: str = "", content_type: str = "audio/wav"):
    status, headers, body = request(base + "identify" + query, data, {"Content-Type": content_type})
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def multipart(filename: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    boundary = "csi-test-boundary-7f3a"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_good_audio_ranks_its_own_work_first_with_offsets_and_a_plot(built, server):
    root, records = built
    data = Path(records[3]["wav"]).read_bytes()
    status, answer = post_audio(server.url, data, "?name=w1v1.wav")
    assert status == 200, answer
    expected = csi.open_index(root / "index").identify(records[3]["wav"], topk=2, offsets=True)
    best = answer["works"][0]
    assert best["song"] == "work1" and best["utt"] == "w1v1" and best["rank"] == 1
    assert best["query_offset_s"] == expected["works"][0]["query_offset_s"] and "offset_s" in best
    assert best["pair_score"] > 0.99 and best["distance"] == pytest.approx(1 - best["score"], abs=1e-6)
    assert [w["song"] for w in answer["works"]] == [w["song"] for w in expected["works"]]
    assert [w["score"] for w in answer["works"]] == pytest.approx([w["score"] for w in expected["works"]], abs=1e-5)
    assert answer["query"] == "w1v1.wav" and answer["duration_s"] == 13.0 and answer["chunks"] == 2
    assert len(answer["works"]) == 2                                     # the service's default topk
    status, headers, png = request(server.url.rstrip("/") + answer["plot"])
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert request(server.url + "plot/" + "0" * 32 + ".png")[0] == 404


def test_tail_of_a_recording_finds_where_it_starts(built, server):
    _, records = built
    y, _ = sf.read(records[1]["wav"], dtype="float32")
    status, answer = post_audio(server.url, wav_bytes(y[5 * SR:]), "?topk=1&name=tail.wav")
    assert status == 200, answer
    best = answer["works"][0]
    assert len(answer["works"]) == 1 and best["utt"] == "w0v1"
    assert best["query_offset_s"] == 0.0 and best["offset_s"] == 5.0
    plotted = server.service._plots[answer["id"]]                         # the plot's ringed pair is the answer's
    assert best_pair_s(plotted)[:2] == (best["query_offset_s"], best["offset_s"])


def test_multipart_upload_gives_the_same_answer(built, server):
    _, records = built
    data = Path(records[0]["wav"]).read_bytes()
    body, ctype = multipart("mine.wav", data)
    status, answer = post_audio(server.url, body, "?topk=3", ctype)
    assert status == 200, answer
    _, raw = post_audio(server.url, data, "?topk=3")
    assert answer["query"] == "mine.wav" and answer["works"][0]["song"] == "work0"
    assert [(w["song"], w["score"]) for w in answer["works"]] == [(w["song"], w["score"]) for w in raw["works"]]
    status, answer = post_audio(server.url, multipart("x.wav", data, field="other")[0].replace(
        b'name="note"', b'name="a"'), "", ctype)
    assert status == 200                                                 # the one part with a file name


@pytest.mark.parametrize("case, status, reason", [
    ("empty", 400, "empty upload"),
    ("empty_form", 400, "empty upload: the form's file 'nothing.wav' has no bytes"),
    ("form_without_file", 400, "the form has no file"),
    ("not_audio", 415, "not audio: notes.wav"),
    ("too_long", 413, "too long: long.wav is 30.0 s; the limit is 20 s"),
    ("too_large", 413, "too large: 4194304 bytes (4.0 MB); the limit is 3 MB"),
    ("silent", 422, "unusable audio: silence.wav: silent"),
    ("bad_topk", 400, "topk must be between 1 and 4, got 9"),
])
def test_bad_uploads_get_the_reason_and_the_service_goes_on(built, server, case, status, reason):
    _, records = built
    ctype, query = "audio/wav", f"?name={case}.wav"
    if case == "empty":
        data = b""
    elif case == "empty_form":
        data, ctype = multipart("nothing.wav", b"")
    elif case == "form_without_file":
        boundary = "b0"
        data, ctype = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--{boundary}--\r\n"
                       .encode(), f"multipart/form-data; boundary={boundary}")
    elif case == "not_audio":
        data, query = b"these are my notes, not audio\n" * 50, "?name=notes.wav"
    elif case == "too_long":
        data, query = wav_bytes(tone_audio(30, SR, seed=5)), "?name=long.wav"
    elif case == "too_large":
        data = np.random.default_rng(0).bytes(4 << 20)
    elif case == "silent":
        data, query = wav_bytes(np.zeros(5 * SR, np.float32)), "?name=silence.wav"
    else:
        data, query = Path(records[0]["wav"]).read_bytes(), "?topk=9"
    got, answer = post_audio(server.url, data, query, ctype)
    assert got == status and set(answer) == {"error"} and reason in answer["error"], answer
    got, answer = post_audio(server.url, Path(records[2]["wav"]).read_bytes())
    assert got == 200 and answer["works"][0]["song"] == "work1"


def test_wrong_paths_and_methods_and_missing_length(server):
    status, _, body = request(server.url + "nowhere")
    assert status == 404 and "no such path /nowhere" in json.loads(body)["error"]
    status, _, body = request(server.url + "health", b"x")
    assert status == 405 and "use GET" in json.loads(body)["error"]
    status, _, body = request(server.url + "identify")
    assert status == 405 and "use POST" in json.loads(body)["error"]
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    conn.putrequest("POST", "/identify")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 411 and "Content-Length" in json.loads(r.read())["error"]
    conn.close()


def test_health_and_page(built, server):
    root, _ = built
    status, _, body = request(server.url + "health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["recordings"] == 4 and health["works"] == 2
    assert health["index"] == str(root / "index") and health["limits"]["max_seconds"] == 20.0
    assert health["limits"]["max_mb"] == 3.0 and health["calibrated"] is False
    status, headers, page = request(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="file"' in page and b'id="results"' in page and b"4 recordings of 2 works" in page


def test_bounded_load_40_requests_4_at_a_time(built, server):
    _, records = built
    bodies = [Path(r["wav"]).read_bytes() for r in records]

    def one(i: int) -> tuple[int, float, str]:
        t0 = time.perf_counter()
        status, answer = post_audio(server.url, bodies[i % 4], f"?topk=1&name=q{i}.wav")
        return status, (time.perf_counter() - t0) * 1000, answer["works"][0]["song"] if status == 200 else ""

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(40)))
    assert [s for s, _, _ in results] == [200] * 40
    assert [song for _, _, song in results] == [records[i % 4]["song"] for i in range(40)]
    ms = sorted(m for _, m, _ in results)
    p50, p99 = statistics.median(ms), ms[min(len(ms) - 1, int(np.ceil(0.99 * len(ms))) - 1)]
    print(f"\nserve load: 40 requests, 4 at a time: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    assert 0 < p50 <= p99


def test_the_tool_serves_until_terminated(built, tmp_path):
    root, records = built
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "tools.serve_identify", str(root / "index"), "--port", "0",
                             "--max_seconds", "20", "--device", "cpu", "--out_dir", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/"), proc.stderr.read() if not url else url
        status, answer = post_audio(url, Path(records[1]["wav"]).read_bytes())
        assert status == 200 and answer["works"][0]["utt"] == "w0v1"
        assert post_audio(url, wav_bytes(tone_audio(25, SR)))[0] == 413
        assert json.loads(request(url + "health")[2])["limits"]["max_seconds"] == 20.0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0
    import yaml
    record = yaml.safe_load((tmp_path / "run" / "serve_identify.yaml").read_text())
    assert record["config"]["limits"]["max_seconds"] == 20.0 and record["config"]["url"] == url
    assert "tools.serve_identify" in record["environment"]["command"]
    log = (tmp_path / "run" / "serve_identify.log").read_text()
    assert "serving on " + url in log and "identify upload (416044 bytes, 13.0 s): work0" in log and "stopped" in log


# ---- the page in headless Chromium ------------------------------------------------------------
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    return os.environ.get("CSI_CHROMIUM") or next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)


def test_the_page_in_headless_chromium(built, server, tmp_path):
    """Choose a file through the page's input; the result list and the plot appear, on the
    page and in its screenshot (``CSI_SERVE_SCREENSHOT=path`` keeps a copy: docs/images/serve.png)."""
    browser_path = chromium_path()
    if browser_path is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium; or CSI_CHROMIUM=path)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    from matplotlib.image import imread

    _, records = built
    query = tmp_path / "my recording.wav"
    shutil.copy(records[2]["wav"], query)
    shot = tmp_path / "page.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 960, "height": 1000})
            page.goto(server.url)
            page.set_input_files("#file", str(query))
            page.wait_for_selector("#results li", timeout=60_000)
            page.wait_for_function("document.getElementById('plot').complete && "
                                   "document.getElementById('plot').naturalWidth > 0", timeout=60_000)
            items = page.locator("#results li").all_inner_texts()
            box = page.locator("#results").bounding_box()
            status_line = page.inner_text("#status")
            page.screenshot(path=str(shot), full_page=True)
            page.set_input_files("#file", files=[{"name": "notes.wav", "mimeType": "audio/wav",
                                                  "buffer": b"not audio at all" * 20}])
            page.wait_for_selector("#error", state="visible", timeout=60_000)
            error = page.inner_text("#error")
            assert not page.locator("#results").is_visible()
        finally:
            browser.close()
    assert len(items) == 2 and items[0].startswith("work1") and "best: w1v0" in items[0], items
    assert "distance" in items[0] and "query " in items[0], items
    assert "my recording.wav: 13 s, 2 chunks" in status_line, status_line
    assert error.startswith("415: not audio: notes.wav"), error
    image = imread(shot)[..., :3]                                       # floats in [0, 1]
    want = np.array([int(RESULTS_BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    x0, y0, x1, y1 = (int(round(v)) for v in (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]))
    region = image[y0:y1, x0:x1]
    assert region.size and box["height"] >= 30
    background = np.all(np.abs(region - want) < 2 / 255, axis=-1)
    assert background.mean() > 0.6, background.mean()                   # the list's colour fills its box ...
    assert (~background).mean() > 0.01                                  # ... around its text
    outside = np.all(np.abs(image - want) < 2 / 255, axis=-1)
    outside[y0:y1, x0:x1] = False
    assert outside.mean() < 0.01                                        # and is nowhere else
    if os.environ.get("CSI_SERVE_SCREENSHOT"):
        shutil.copy(shot, os.environ["CSI_SERVE_SCREENSHOT"])


def test_a_calibrated_index_answers_p_same_work(built, tmp_path):
    from csi.scoring.calibration import Calibration

    root, records = built
    index = tmp_path / "index"
    shutil.copytree(root / "index", index)
    plain = ServingIdentifier(index)
    Calibration(a=4.0, b=-400.0, fitted_on=10).with_source(plain.index.model, plain.matching.to_dict()).save(index)
    srv = make_server(IdentifyService(ServingIdentifier(index), LIMITS), "127.0.0.1", 0)
    serve_in_thread(srv)
    try:
        status, answer = post_audio(srv.url, Path(records[0]["wav"]).read_bytes())
        health = json.loads(request(srv.url + "health")[2])
    finally:
        srv.shutdown()
        srv.server_close()
    assert status == 200 and health["calibrated"] is True
    p = [w["p_same_work"] for w in answer["works"]]
    want = Calibration(a=4.0, b=-400.0).probability([w["distance"] for w in answer["works"]])
    assert p == pytest.approx(want, abs=1e-3) and p == sorted(p, reverse=True) and p[0] > p[1]


def test_a_fault_of_the_service_is_a_500_and_it_goes_on(built, server, monkeypatch):
    _, records = built

    def broken(upload, topk):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(server.service, "identify", broken)
    status, answer = post_audio(server.url, Path(records[0]["wav"]).read_bytes())
    assert status == 500 and answer == {"error": "internal error: RuntimeError: disk on fire"}
    monkeypatch.undo()
    status, answer = post_audio(server.url, Path(records[0]["wav"]).read_bytes())
    assert status == 200 and answer["works"][0]["song"] == "work0"
    assert json.loads(request(server.url + "health")[2])["responses"]["500"] >= 1
