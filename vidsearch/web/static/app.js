// vidsearch evidence review: plain JavaScript over the JSON API (no build step, no CDN).
"use strict";
const $ = (s, el = document) => el.querySelector(s);
const $$ = (s, el = document) => [...el.querySelectorAll(s)];
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k.nodeType ? k : document.createTextNode(k));
  return el;
};
const S = { last: null, query: null, marks: new Map(), uploads: [], info: new Map(), play: null, rangeEls: new Map() };

function ts(sec) {
  sec = Math.max(0, sec || 0);
  const hh = Math.floor(sec / 3600), mm = Math.floor(sec % 3600 / 60), ss = (sec % 60).toFixed(1).padStart(4, "0");
  return (hh ? hh + ":" + String(mm).padStart(2, "0") : mm) + ":" + ss;
}
const base = (p) => (p || "").split("/").slice(-2).join("/");
function toast(msg, isError) {
  const t = $("#toast"); t.textContent = msg; t.className = isError ? "error" : "";
  clearTimeout(toast.timer); toast.timer = setTimeout(() => t.classList.add("hidden"), isError ? 6000 : 2500);
}
async function api(method, url, body) {
  const opt = { method, headers: {} };
  if (body instanceof FormData) opt.body = body;
  else if (body !== undefined) { opt.body = JSON.stringify(body); opt.headers["Content-Type"] = "application/json"; }
  const r = await fetch(url, opt);
  const data = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) { toast(data.error || r.statusText, true); throw new Error(data.error); }
  return data;
}
const caseName = () => $("#case-name").value.trim() || "case-1";
const caseUrl = (rest = "") => "/api/cases/" + encodeURIComponent(caseName()) + rest;

// -- tabs ---------------------------------------------------------------------------------------
$$("#tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
function showTab(name) {
  $$("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  $$(".tab").forEach((t) => t.classList.toggle("hidden", t.id !== "tab-" + name));
  if (name === "case") loadCase();
  if (name === "status") loadStatus();
}

// -- search ---------------------------------------------------------------------------------------
const lines = (id) => $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);
function readQuery() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  return {
    prompts: lines("#q-prompts"), negatives: lines("#q-negatives"), images: S.uploads.map((u) => u.id),
    text_in_frame: $("#q-text").value || null, after: $("#q-after").value || null, before: $("#q-before").value || null,
    video: $("#q-video").value || null, model: $("#q-model").value || null,
    top: num("#q-top") || 10, min_score: num("#q-min"), smooth: num("#q-smooth") ?? 3,
  };
}
$("#query-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  S.query = readQuery(); S.marks.clear();
  await runQuery(S.query);
});
$("#q-prompts").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#search-btn").click(); } });
$("#refine-btn").addEventListener("click", async () => {
  const feedback = [...S.marks.values()].map((m) => ({ video_id: m.video_id, start: m.start, end: m.end, relevant: m.relevant }));
  const previous = S.last.ranges.map((r) => ({ video_id: r.video_id, start: r.start, end: r.end }));
  await runQuery({ ...S.query, feedback, previous });
});
async function runQuery(q) {
  $("#search-btn").disabled = true; $("#summary").textContent = "searching…";
  try { renderResults(await api("POST", "/api/query", q)); }
  catch (e) { $("#summary").textContent = ""; }
  finally { $("#search-btn").disabled = false; }
}
function renderResults(res) {
  S.last = res; S.rangeEls.clear();
  const n = res.ranges.length;
  $("#summary").textContent = n
    ? `${n} range${n > 1 ? "s" : ""} for “${res.query}” — ${res.frames_scanned.toLocaleString()} frames in ${(res.api_seconds * 1000).toFixed(0)} ms`
    : `no matches for “${res.query}” in ${res.frames_scanned.toLocaleString()} frames`;
  if (res.semantics === "colours") $("#summary").append(h("div", { class: "muted" }, "demo model: it understands only colour words, it is not CLIP"));
  renderChanges(res);
  $("#timelines").replaceChildren(...(res.timelines || []).map(timeline));
  $("#results").replaceChildren(...res.ranges.map((r, i) => resultCard(r, i, res)));
  $("#refine-btn").disabled = !S.marks.size;
}
function renderChanges(res) {
  const box = $("#changes"); box.replaceChildren();
  if (!res.changes) return;
  const f = res.feedback_frames || {};
  const moved = res.changes.was_rank.filter((w, i) => w !== i + 1).length;
  box.append(h("b", {}, "Refined"), ` with ${f.relevant || 0} relevant and ${f.not_relevant || 0} not-relevant frames: ${moved} of ${res.ranges.length} ranges changed place`);
  if (res.changes.dropped.length)
    box.append(h("div", {}, "dropped: " + res.changes.dropped.map((d) => `#${d.rank} ${ts(d.start)}–${ts(d.end)}`).join(", ")));
}
function changeBadge(res, i) {
  if (!res.changes) return null;
  const was = res.changes.was_rank[i];
  if (was === null) return h("span", { class: "badge new" }, "new");
  if (was === i + 1) return h("span", { class: "badge" }, "same");
  return was > i + 1 ? h("span", { class: "badge up" }, `▲ was #${was}`) : h("span", { class: "badge down" }, `▼ was #${was}`);
}
function resultCard(r, i, res) {
  const mark = S.marks.get(r.id);
  const li = h("li", { class: "result" + (mark ? (mark.relevant ? " relevant" : " irrelevant") : ""), "data-id": r.id, "data-rank": i + 1 },
    h("div", { class: "rank" }, String(i + 1)),
    h("img", { class: "thumb", loading: "lazy", alt: "peak frame", src: `/api/videos/${r.video_id}/frame.jpg?t=${r.peak_time}&size=336`, onclick: () => play(r) }),
    h("div", { class: "meta" },
      h("div", { class: "times" }, `${ts(r.start)} – ${ts(r.end)}`, h("span", { class: "score", title: "best smoothed score" }, r.score.toFixed(3)), changeBadge(res, i)),
      h("div", { class: "video", title: r.path }, `${base(r.path)} · peak ${ts(r.peak_time)} (${r.peak_score.toFixed(3)}) · ${(r.end - r.start).toFixed(1)} s`),
      r.text ? h("div", { class: "muted" }, `on screen: ${r.text}`) : null,
      h("div", { class: "actions" },
        h("button", { class: "play", onclick: () => play(r) }, "▶ Play"),
        h("button", { class: "mark-relevant" + (mark && mark.relevant ? " on-good" : ""), onclick: () => setMark(r, true) }, "✓ Relevant"),
        h("button", { class: "mark-irrelevant" + (mark && !mark.relevant ? " on-bad" : ""), onclick: () => setMark(r, false) }, "✗ Not relevant"),
        h("button", { class: "keep", onclick: () => keep(r) }, "+ Keep in case"))));
  S.rangeEls.set(r.id, li);
  return li;
}
async function setMark(r, relevant) {
  const old = S.marks.get(r.id);
  if (old && old.relevant === relevant) S.marks.delete(r.id);
  else {
    S.marks.set(r.id, { ...r, relevant });
    api("POST", caseUrl("/marks"), { video_id: r.video_id, start: r.start, end: r.end, relevant, query: S.last.query }).catch(() => {});
  }
  const i = S.last.ranges.indexOf(r);
  S.rangeEls.get(r.id).replaceWith(resultCard(r, i, S.last));
  $("#refine-btn").disabled = !S.marks.size;
}
async function keep(r) {
  const q = S.last;
  const c = await api("POST", caseUrl("/ranges"), {
    ...r, model_id: q.model_id, semantics: q.semantics,
    query: { label: q.query, prompts: q.prompts, negatives: q.negatives, model_id: q.model_id },
  });
  $("#case-count").textContent = c.ranges.length;
  toast(`kept ${ts(r.start)}–${ts(r.end)} in case “${c.name}” (${c.ranges.length})`);
  refreshCaseList();
}

// -- timelines -------------------------------------------------------------------------------------
function timeline(tl) {
  const W = 1000, H = 50, dur = Math.max(tl.t[tl.t.length - 1] || 1, 1);
  const lo = Math.min(...tl.s, tl.threshold ?? Infinity), hi = Math.max(...tl.s), span = hi - lo || 1;
  const y = (v) => H - 3 - (v - lo) / span * (H - 6);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, a) => { const e = document.createElementNS(ns, tag); for (const k in a) e.setAttribute(k, a[k]); svg.append(e); return e; };
  for (const [s, e] of tl.ranges) add("rect", { class: "hit", x: s / dur * W, y: 0, width: Math.max(2, (e - s) / dur * W), height: H });
  if (tl.threshold !== null) add("line", { class: "thr", x1: 0, x2: W, y1: y(tl.threshold), y2: y(tl.threshold) });
  add("polyline", { class: "curve", points: tl.t.map((t, i) => `${(t / dur * W).toFixed(1)},${y(tl.s[i]).toFixed(1)}`).join(" ") });
  const cursor = add("line", { class: "cursor hidden", x1: 0, x2: 0, y1: 0, y2: H });
  svg.addEventListener("click", (ev) => {
    const box = svg.getBoundingClientRect(), t = (ev.clientX - box.left) / box.width * dur;
    const hit = S.last.ranges.find((r) => r.video_id === tl.video_id && r.start <= t && t <= r.end);
    play(hit || { video_id: tl.video_id, path: tl.path, start: t, end: Math.min(dur, t + 30), peak_time: t }, t);
  });
  const wrap = h("div", { class: "timeline", "data-video": tl.video_id },
    h("div", { class: "name" }, h("span", { title: tl.path }, base(tl.path)), h("span", {}, `0:00 – ${ts(dur)} · click to play from there`)));
  wrap.append(svg);
  wrap.cursor = (t) => { cursor.classList.remove("hidden"); cursor.setAttribute("x1", t / dur * W); cursor.setAttribute("x2", t / dur * W); };
  return wrap;
}

// -- player: exactly the range, from the original file (or an H.264 transcode of the range) -----
const video = $("#video");
async function mediaInfo(vid) {
  if (!S.info.has(vid)) S.info.set(vid, await api("GET", `/api/videos/${vid}/info`));
  return S.info.get(vid);
}
async function play(r, from) {
  const info = await mediaInfo(r.video_id);
  const pad = Math.max(0, Number($("#pad").value) || 0);
  const s = Math.max(0, r.start - pad), e = Math.min(info.duration || Infinity, r.end + pad);
  const p = { r, info, s, e, offset: 0, fps: info.fps || 25, from: from ?? s };
  if (info.playable) video.src = info.file_url;
  else { p.offset = s; video.src = `${info.clip_url}?start=${s.toFixed(3)}&end=${e.toFixed(3)}`; }
  S.play = p;
  $("#player-empty").classList.add("hidden"); $("#player-body").classList.remove("hidden");
  $("#player-title").textContent = `${base(r.path || info.path)}  ${ts(r.start)} – ${ts(r.end)}`;
  $("#player-note").textContent = info.playable
    ? `original file (${info.container}/${info.video_codec}), range requests`
    : `${info.container}/${info.video_codec} does not play in a browser: H.264 transcode of ${ts(s)}–${ts(e)}`;
  whatsHere(r.video_id, r.path || info.path).catch(() => {});
  $$(".playing").forEach((x) => x.classList.remove("playing"));
  if (r.id && S.rangeEls.get(r.id)) S.rangeEls.get(r.id).classList.add("playing");
  video.addEventListener("loadedmetadata", () => { video.currentTime = p.from - p.offset; video.play().catch(() => {}); }, { once: true });
}
// "what's here": the playing video's tags (vidsearch tags), longest first; a tag plays its ranges
async function whatsHere(vid, path) {
  const out = $("#whats-here");
  if (out.dataset.video === vid) return;
  out.dataset.video = vid;
  const r = await fetch(`/api/tags?video_id=${encodeURIComponent(vid)}`);
  const res = await r.json().catch(() => ({}));
  if (!r.ok) { out.replaceChildren(h("p", { class: "muted" }, "What's here: " + (res.error || "no tags"))); return; }
  out.replaceChildren(h("h3", {}, "What's here"), h("div", { class: "tags" }, ...res.tags.map((t) =>
    h("button", { class: "tag", title: t.ranges.map((x) => `${ts(x.start)}–${ts(x.end)}`).join(", "),
      onclick: () => play({ video_id: vid, path, start: t.ranges[0].start, end: t.ranges[0].end, peak_time: t.ranges[0].start }) },
      `${t.tag} · ${ts(t.seconds)}`))));
}
const srcTime = () => (S.play ? S.play.offset + video.currentTime : 0);
video.addEventListener("timeupdate", () => {
  const p = S.play; if (!p) return;
  const t = srcTime();
  $("#clock").textContent = ts(t);
  video.dataset.sourceTime = t.toFixed(3);
  const tl = $(`.timeline[data-video="${p.r.video_id}"]`); if (tl && tl.cursor) tl.cursor(t);
  if ($("#stop-at-end").checked && !video.paused && t >= p.e - 0.02) { video.pause(); video.currentTime = p.e - p.offset; }
});
function step(n) {
  const p = S.play; if (!p) return;
  video.pause();
  video.currentTime = Math.max(0, video.currentTime + n / p.fps);
}
$("#step-back").addEventListener("click", () => step(-1));
$("#step-fwd").addEventListener("click", () => step(1));
$("#to-peak").addEventListener("click", () => { if (S.play) { video.pause(); video.currentTime = S.play.r.peak_time - S.play.offset; } });
document.addEventListener("keydown", (e) => {
  if (/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
  if (e.key === ",") step(-1); if (e.key === ".") step(1);
});

// -- example image uploads -----------------------------------------------------------------------
$("#q-image").addEventListener("change", async (e) => {
  const f = e.target.files[0]; if (!f) return;
  const fd = new FormData(); fd.append("file", f);
  const u = await api("POST", "/api/uploads", fd);
  S.uploads.push(u); e.target.value = "";
  renderUploads();
});
function renderUploads() {
  $("#q-images").replaceChildren(...S.uploads.map((u) => h("span", { class: "badge" }, u.name + " ",
    h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); S.uploads = S.uploads.filter((x) => x !== u); renderUploads(); } }, "×"))));
}

// -- case ------------------------------------------------------------------------------------------
async function refreshCaseList() {
  const { cases } = await api("GET", "/api/cases");
  $("#case-list").replaceChildren(...cases.map((c) => h("option", { value: c.name }, `${c.ranges} ranges`)));
  const cur = cases.find((c) => c.name === caseName());
  $("#case-count").textContent = cur ? cur.ranges : 0;
}
$("#case-name").addEventListener("change", () => { refreshCaseList(); if (!$("#tab-case").classList.contains("hidden")) loadCase(); });
async function loadCase() {
  $("#case-title").textContent = `Case “${caseName()}”`;
  let c;
  try { c = await api("GET", caseUrl()); }
  catch (e) { $("#case-ranges").replaceChildren(h("li", { class: "muted" }, "Nothing kept yet: “+ Keep in case” on a search result.")); $("#case-marks").replaceChildren(); return; }
  $("#case-count").textContent = c.ranges.length;
  $("#case-ranges").replaceChildren(...c.ranges.map((r, i) => keptCard(r, i)));
  $("#case-marks").replaceChildren(...c.marks.slice(-30).reverse().map((m) =>
    h("li", {}, `${m.at} · ${m.verdict} · ${ts(m.start)}–${ts(m.end)} · ${m.query}`)));
  const last = c.exports[c.exports.length - 1];
  if (last && !$("#export-out").textContent) $("#export-out").replaceChildren(reportLink(c.name, last.dir, last.manifest_sha256));
}
function keptCard(r, i) {
  const note = h("textarea", { rows: 2, placeholder: "note (saved when you leave the box)", class: "note" });
  note.value = r.note || "";
  note.addEventListener("change", () => api("PATCH", caseUrl("/ranges/" + r.id), { note: note.value }).then(() => toast("note saved")));
  const li = h("li", { class: "kept", "data-id": r.id },
    h("div", { class: "rank" }, String(i + 1)),
    h("img", { class: "thumb", alt: "peak frame", src: `/api/videos/${r.video_id}/frame.jpg?t=${r.peak_time}&size=336`, onclick: () => play(r) }),
    h("div", { class: "meta" },
      h("div", { class: "times" }, `${ts(r.start)} – ${ts(r.end)}`, r.score !== null ? h("span", { class: "score" }, Number(r.score).toFixed(3)) : null),
      h("div", { class: "video", title: r.path }, `${base(r.path)} · kept ${r.kept_at} · query “${(r.query || {}).label || ""}”`),
      h("div", { class: "actions" },
        h("button", { onclick: () => play(r) }, "▶ Play"),
        h("button", { onclick: () => api("DELETE", caseUrl("/ranges/" + r.id)).then(loadCase) }, "Remove")),
      note));
  S.rangeEls.set(r.id, li);
  return li;
}
function reportLink(name, dir, sha) {
  const url = `/cases/${encodeURIComponent(name)}/exports/${dir}/report.html`;
  return h("div", {}, h("a", { id: "report-link", href: url, target: "_blank" }, "Open the evidence report"),
    ` · export ${dir} · manifest SHA-256 ${sha.slice(0, 16)}… · `, h("a", { href: url.replace("report.html", "manifest.json"), target: "_blank" }, "manifest.json"));
}
$("#export-btn").addEventListener("click", async () => {
  $("#export-btn").disabled = true; $("#export-out").textContent = "exporting (hashing sources, cutting clips)…";
  try {
    const out = await api("POST", caseUrl("/export"), { clips: $("#export-clips").checked, pad: Number($("#export-pad").value) || 0 });
    $("#export-out").replaceChildren(reportLink(caseName(), out.export, out.manifest_sha256),
      ...out.warnings.map((w) => h("div", { class: "muted" }, w)));
  } catch (e) { $("#export-out").textContent = ""; }
  finally { $("#export-btn").disabled = false; }
});

// -- status ----------------------------------------------------------------------------------------
async function loadStatus() {
  const s = await api("GET", "/api/status");
  const c = s.chunks, pct = s.progress === null ? 0 : Math.round(s.progress * 100);
  const stat = (label, v) => h("div", { class: "stat" }, h("b", {}, String(v)), label);
  $("#status-out").replaceChildren(
    h("div", { class: "stats" }, stat("videos", s.videos), stat("hours", s.hours.toFixed(2)), stat("frames", s.frames.toLocaleString()),
      stat("chunks done", c.done), stat("pending", c.pending), stat("failed", c.failed)),
    h("div", {}, `ingest progress ${pct}%` + (s.ingest_running ? " (running: refreshes every 5 s)" : "")),
    h("div", { class: "bar" }, h("div", { style: `width:${pct}%` })),
    h("p", { class: "muted" }, s.index),
    table(["model", "dim", "frames"], s.models.map((m) => [m.name + " (" + m.model_id + ")", m.dim, m.frames])),
    table(["video", "duration", "done", "pending", "failed"], s.per_video.map((v) => [base(v.path), ts(v.duration), v.done, v.pending, v.failed])),
    s.failed_files.length || s.failed_chunks.length
      ? table(["failed", "error"], [...s.failed_files.map((f) => [f.path, f.error]), ...s.failed_chunks.map((f) => [`${base(f.path)} ${ts(f.start)}–${ts(f.end)}`, f.error])]) : "");
  clearTimeout(loadStatus.timer);
  if (s.ingest_running && !$("#tab-status").classList.contains("hidden")) loadStatus.timer = setTimeout(loadStatus, 5000);
}
function table(head, rows) {
  return h("table", {}, h("tr", {}, ...head.map((x) => h("th", {}, x))), ...rows.map((r) => h("tr", {}, ...r.map((x) => h("td", {}, String(x))))));
}

// -- events and classify ------------------------------------------------------------------------------
$("#events-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const res = await api("POST", "/api/events", { prompts: [$("#e-prompt").value], min_duration: Number($("#e-min").value) || 0, model: $("#q-model").value || null });
  const sm = res.summary;
  const vids = res.videos.filter((v) => v.events.length);
  $("#events-out").replaceChildren(
    h("p", {}, `“${res.query}”: ${sm.events} event(s) in ${sm.videos_with_events} of ${sm.videos} video(s)`),
    table(["video", "events", "first seen", "total dwell", "longest"], vids.map((v) => [base(v.path), v.events.length, ts(v.first_appearance), v.total_dwell.toFixed(1) + " s", v.longest_dwell.toFixed(1) + " s"])),
    h("table", {}, h("tr", {}, ...["video", "start", "end", "duration", "peak", ""].map((x) => h("th", {}, x))),
      ...vids.flatMap((v) => v.events.map((ev) => h("tr", {}, h("td", {}, base(v.path)), h("td", {}, ts(ev.start)), h("td", {}, ts(ev.end)),
        h("td", {}, (ev.end - ev.start).toFixed(1) + " s"), h("td", {}, ts(ev.peak_time)),
        h("td", {}, h("button", { onclick: () => play({ ...ev, video_id: v.video_id, path: v.path }) }, "▶ Play")))))));
});
const PALETTE = ["#2459d1", "#1e8e3e", "#d08a00", "#c62828", "#7b3fb5", "#00838f", "#ad1457", "#5d4037"];
$("#classify-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const minp = $("#c-min").value === "" ? null : Number($("#c-min").value);
  const res = await api("POST", "/api/classify", { labels: $("#c-labels").value, min_prob: minp, model: $("#q-model").value || null });
  const colour = (l) => (l === "uncertain" ? "#bbb" : PALETTE[res.labels.indexOf(l) % PALETTE.length]);
  $("#classify-out").replaceChildren(
    h("div", { class: "legend" }, ...[...res.labels, "uncertain"].map((l) => h("span", {}, h("i", { style: `background:${colour(l)}` }), l))),
    ...res.videos.map((v) => {
      const dur = v.segments.length ? v.segments[v.segments.length - 1].end : 1;
      return h("div", {}, h("div", { class: "muted" }, base(v.path)), h("div", { class: "labels" }, ...v.segments.map((s) =>
        h("div", { title: `${s.label} ${ts(s.start)}–${ts(s.end)} (p ${s.mean_prob.toFixed(2)})`, style: `width:${(s.end - s.start) / dur * 100}%;background:${colour(s.label)}`,
          onclick: () => play({ video_id: v.video_id, path: v.path, start: s.start, end: s.end, peak_time: s.start }) }))));
    }),
    table(["label", "total time"], Object.entries(res.totals).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, ts(v)])));
});

// -- start -------------------------------------------------------------------------------------------
(async function start() {
  try {
    const { models } = await api("GET", "/api/models");
    $("#q-model").replaceChildren(...models.map((m) => h("option", { value: m.name }, m.name + (m.default ? " (default)" : ""))));
  } catch (e) { /* an empty index says so on search */ }
  refreshCaseList().catch(() => {});
  $("#q-prompts").focus();
})();
