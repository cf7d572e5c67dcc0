"""The identify page (GET /): drop or choose an audio file; it is posted to /identify as a
form, and the matching works are listed with the alignment plot of the best match.
Names from the index are put in the page as text nodes, never as HTML."""
from __future__ import annotations

import html
import json

RESULTS_BACKGROUND = "#dbeafe"          # the result list's colour: the browser test looks for it

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>csi — identify a recording</title>
<style>
  body { font-family: sans-serif; margin: 24px; max-width: 900px; color: #1f2933; background: #ffffff; }
  h1 { font-size: 22px; margin: 0 0 4px 0; }
  #about { color: #52606d; font-size: 13px; margin-bottom: 16px; }
  #drop { border: 2px dashed #7b8794; border-radius: 8px; padding: 22px; text-align: center; background: #f5f7fa; }
  #drop.over { background: #e4e7eb; border-color: #3e4c59; }
  #status { min-height: 20px; font-size: 14px; color: #3e4c59; }
  #error { display: none; background: #fde2e1; color: #8a1c1c; border: 1px solid #f5a3a0; padding: 10px;
           border-radius: 6px; margin: 10px 0; }
  #results { display: none; background: __RESULTS_BACKGROUND__; padding: 12px 12px 12px 40px;
             border-radius: 6px; margin: 10px 0; min-height: 40px; }
  #results li { margin: 4px 0; font-size: 14px; }
  #results .song { font-weight: bold; }
  #results .num { font-family: monospace; }
  #plot { display: none; max-width: 100%; border: 1px solid #cbd2d9; margin-top: 8px; }
</style>
</head>
<body>
<h1>Identify a recording</h1>
<div id="about">__ABOUT__</div>
<div id="drop">
  <p>Drop an audio file here, or choose one:</p>
  <input type="file" id="file" accept="audio/*,video/mp4,video/webm">
  <label>works listed <input type="number" id="topk" min="1" max="__MAX_TOPK__" value="__TOPK__" style="width:4em"></label>
</div>
<p id="status"></p>
<div id="error"></div>
<ol id="results"></ol>
<img id="plot" alt="alignment of the query with the best match">
<script>
const LIMITS = __LIMITS__;
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function reset() {
  $("error").style.display = "none";
  $("results").style.display = "none";
  $("results").replaceChildren();
  $("plot").style.display = "none";
  $("plot").removeAttribute("src");
}

function showError(text) {
  $("status").textContent = "";
  $("error").textContent = text;
  $("error").style.display = "block";
}

function render(answer) {
  $("status").textContent = `${answer.query}: ${answer.duration_s} s, ${answer.chunks} chunks, ` +
    `answered in ${answer.elapsed_ms} ms`;
  const list = $("results");
  if (!answer.works.length) list.appendChild(el("li", "", "no match"));
  for (const w of answer.works) {
    const li = el("li");
    li.appendChild(el("span", "song", w.song));
    li.appendChild(document.createTextNode("  distance "));
    li.appendChild(el("span", "num", w.distance.toFixed(4)));
    if (w.p_same_work !== undefined) {
      li.appendChild(document.createTextNode("  p(same work) "));
      li.appendChild(el("span", "num", w.p_same_work.toFixed(3)));
    }
    if (w.utt) {
      let where = `  best: ${w.utt}`;
      if (w.offset_s !== undefined) where += ` (query ${w.query_offset_s} s ↔ ${w.offset_s} s)`;
      li.appendChild(document.createTextNode(where));
    }
    list.appendChild(li);
  }
  list.style.display = "block";
  if (answer.plot) {
    $("plot").src = answer.plot;
    $("plot").style.display = "block";
  }
}

async function identify(file) {
  reset();
  if (file.size > LIMITS.max_mb * 1048576) {
    showError(`too large: ${(file.size / 1048576).toFixed(1)} MB; the limit is ${LIMITS.max_mb} MB`);
    return;
  }
  $("status").textContent = `identifying ${file.name} …`;
  const form = new FormData();
  form.append("file", file, file.name);
  let response, body;
  try {
    response = await fetch(`identify?topk=${encodeURIComponent($("topk").value)}`, {method: "POST", body: form});
    body = await response.json();
  } catch (e) {
    showError(`request failed: ${e}`);
    return;
  }
  if (!response.ok) {
    showError(`${response.status}: ${body.error || "error"}`);
    return;
  }
  render(body);
}

$("file").addEventListener("change", (e) => { if (e.target.files.length) identify(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files.length) identify(e.dataTransfer.files[0]);
});
</script>
</body>
</html>
"""


def render_page(health: dict) -> bytes:
    """The page, stating the index and the limits (``IdentifyService.health()``)."""
    limits = health["limits"]
    about = (f"{health['recordings']} recordings of {health['works']} works in {health['index']}; "
             f"uploads up to {limits['max_mb']:g} MB and {limits['max_seconds']:g} s"
             + ("; p(same work) calibrated" if health.get("calibrated") else ""))
    text = (PAGE.replace("__RESULTS_BACKGROUND__", RESULTS_BACKGROUND).replace("__ABOUT__", html.escape(about))
            .replace("__TOPK__", str(int(limits["topk"]))).replace("__MAX_TOPK__", str(int(limits["max_topk"])))
            .replace("__LIMITS__", json.dumps(limits)))
    return text.encode("utf-8")
