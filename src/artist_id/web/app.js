// artist-id web page: choose or drop a painting, show the answer of POST /predict and the
// heat map of POST /explain. Plain JavaScript, no build step, nothing loaded from elsewhere;
// every text from the API goes through textContent (never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
let meta = null; // GET /metadata
let current = 0; // the latest request: answers to older ones are dropped

function pct(p) {
  return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + " %";
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

// The API answers errors as JSON {"error": code, "detail": message}: show its own words.
async function apiError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    /* not JSON (a proxy's page, a dropped connection): fall back to the status line */
  }
  if (body && typeof body.detail === "string") {
    return { code: body.error || String(response.status), message: body.detail };
  }
  return { code: String(response.status), message: response.statusText || "request failed" };
}

function showError(err) {
  const box = $("error");
  box.replaceChildren(
    el("strong", "The server refused this picture: "),
    el("span", err.message),
    el("span", " ("),
    el("code", err.code),
    el("span", ")"),
  );
  box.hidden = false;
}

async function loadMetadata() {
  try {
    const r = await fetch("metadata", { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error((await apiError(r)).message);
    meta = await r.json();
  } catch (e) {
    $("model-line").textContent = "The model's description could not be loaded: " + e.message;
    return;
  }
  const m = meta.model;
  const names = meta.classes.map((c) => c.artist);
  $("model-line").textContent =
    `Model ${m.name} knows ${names.length} artists: ${names.join(", ")}.`;
  $("version").textContent = `Model ${m.name}, version ${m.version}`;
  const select = $("top-k");
  for (let k = 1; k <= meta.top_k.max; k++) {
    const option = el("option", String(k));
    option.value = String(k);
    if (k === meta.top_k.default) option.selected = true;
    select.append(option);
  }
}

function verdictText(answer) {
  const best = answer.top_k[0];
  if (!answer.unknown) {
    return `The model names ${best.artist} with a probability of ${pct(answer.probability)}.`;
  }
  let text =
    `The model is not sure enough to name an artist. Its best guess, ${best.artist}, ` +
    `has a probability of ${pct(answer.probability)}`;
  if (meta && meta.unknown) {
    const u = meta.unknown;
    text +=
      `, below the threshold of ${pct(u.threshold)} chosen on validation paintings: ` +
      `at or above it the model was right ${pct(u.val_precision)} of the time ` +
      `(on ${pct(u.val_coverage)} of them); below it, it is too often wrong.`;
  } else {
    text += ", below the threshold chosen on validation paintings.";
  }
  return text + " It only knows the artists listed above, so a painting by anyone else " +
    "is not recognised as such.";
}

function showAnswer(answer, file) {
  $("result").hidden = false;
  const name = $("artist");
  name.className = answer.unknown ? "unknown" : "";
  name.textContent = answer.unknown ? "Unknown" : answer.artist;
  $("verdict-text").textContent = verdictText(answer);

  const best = answer.top_k[0];
  const facts = $("facts");
  facts.replaceChildren();
  const about = answer.unknown ? ` (best guess: ${best.artist})` : "";
  for (const [label, value] of [
    ["Genre" + about, best.genre],
    ["Nationality", best.nationality],
    ["Years", best.years],
  ]) {
    if (value) facts.append(el("dt", label), el("dd", value));
  }

  const list = $("top-list");
  list.replaceChildren();
  for (const t of answer.top_k) {
    const item = el("li");
    item.setAttribute("aria-label", `${t.artist}: ${pct(t.probability)}`);
    const track = el("div", undefined, "track");
    track.setAttribute("aria-hidden", "true");
    const fill = el("div", undefined, "fill");
    fill.style.width = (100 * t.probability).toFixed(1) + "%";
    track.append(fill);
    item.append(el("span", t.artist, "name"), track, el("span", pct(t.probability), "pct"));
    list.append(item);
  }

  // Genres of the painting itself, when the service answers them (a list of names or of
  // {genre|name, probability|score} objects); the page works without them.
  const genres = Array.isArray(answer.genres) ? answer.genres : [];
  const ul = $("genres");
  ul.replaceChildren();
  for (const g of genres) {
    const label = typeof g === "string" ? g : g.genre || g.name || "";
    const p = typeof g === "object" && g ? g.probability ?? g.score : undefined;
    if (label) ul.append(el("li", typeof p === "number" ? `${label} (${pct(p)})` : label));
  }
  $("genres-box").hidden = ul.children.length === 0;

  $("version").textContent = `Model ${answer.model.name}, version ${answer.model.version}`;
  $("preview-caption").textContent = file.name;
}

async function explain(file, token) {
  const box = $("explain-box");
  box.hidden = false;
  $("explain-figure").hidden = true;
  $("explain-status").textContent = "Computing where the model looked…";
  const form = new FormData();
  form.append("image", file, file.name);
  let r;
  try {
    r = await fetch("explain", { method: "POST", body: form, headers: { Accept: "application/json" } });
  } catch (e) {
    if (token === current) $("explain-status").textContent = "No heat map: " + e.message;
    return;
  }
  if (token !== current) return;
  if (!r.ok) {
    const err = await apiError(r);
    $("explain-status").textContent = `No heat map: ${err.message} (${err.code})`;
    return;
  }
  const body = await r.json();
  if (token !== current) return;
  const ex = body.explanation;
  const who = ex.artist;
  const img = $("heatmap");
  img.src = `data:${ex.image.media_type};base64,${ex.image.base64}`;
  img.alt =
    `Heat map over the painting: the brighter a region, the more it made the model say ` +
    `${who}. The strongest evidence is ${where(ex.peak)}.`;
  $("heatmap-caption").textContent =
    `Brighter = more evidence for ${who} (${ex.method} on layer ${ex.layer}; ` +
    `the model sees the centred square of the picture).`;
  $("explain-figure").hidden = false;
  $("explain-status").textContent = "";
}

function where(peak) {
  const col = peak.x < 1 / 3 ? "left" : peak.x < 2 / 3 ? "centre" : "right";
  const row = peak.y < 1 / 3 ? "top" : peak.y < 2 / 3 ? "middle" : "bottom";
  return row === "middle" && col === "centre" ? "in the centre" : `at the ${row} ${col}`;
}

async function ask(file) {
  const token = ++current;
  $("error").hidden = true;
  $("result").hidden = true;
  $("explain-box").hidden = true;
  $("status").textContent = `Asking the model about ${file.name}…`;
  const preview = $("preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.alt = `The picture you chose: ${file.name}`;

  const form = new FormData();
  form.append("image", file, file.name);
  const k = $("top-k").value;
  let r;
  try {
    r = await fetch("predict" + (k ? `?top_k=${encodeURIComponent(k)}` : ""), {
      method: "POST",
      body: form,
      headers: { Accept: "application/json" },
    });
  } catch (e) {
    if (token === current) {
      $("status").textContent = "";
      showError({ code: "network", message: "the server could not be reached (" + e.message + ")" });
    }
    return;
  }
  if (token !== current) return;
  if (!r.ok) {
    $("status").textContent = "";
    showError(await apiError(r));
    return;
  }
  const answer = await r.json();
  if (token !== current) return;
  showAnswer(answer, file);
  $("status").textContent = answer.unknown
    ? "Answer received: unknown artist."
    : `Answer received: ${answer.artist}.`;
  explain(file, token);
}

function setup() {
  const input = $("file");
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) ask(input.files[0]);
  });
  $("top-k").addEventListener("change", () => {
    if (input.files && input.files[0]) ask(input.files[0]);
  });
  $("ask").addEventListener("submit", (e) => e.preventDefault());
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) ask(file);
  });
  loadMetadata();
}

document.addEventListener("DOMContentLoaded", setup);
