// evalkit review player: an anywidget ES module (no build step).
// Renders from the model's traits; user actions go back as messages ({event: ...}) or trait
// changes. Every text from data (prompts, notes, names) goes through textContent, never HTML.

const RATES = [0.25, 0.5, 1, 1.5, 2];
const KEYS = {
  all: [["Space", "play / pause"], [", .", "previous / next frame"], ["Shift + , .", "back / forward 10 frames"],
    ["0 – 9", "seek to 0 – 90 %"], ["- =", "slower / faster"], ["o", "map overlay on / off"],
    ["click timeline", "seek there"], ["?", "this help"], ["Esc", "close help / clear span"]],
  review: [["Shift + 1 – 9", "failure mode N: fail, again: pass (labels the marked span instead, if any)"],
    ["[ ]", "span starts / ends at this frame"], ["Enter", "submit this clip (goes to the next)"],
    ["u or Ctrl + Z", "undo the last label"], ["n p", "next / previous clip"], ["m", "write a note"]],
  ab: [["a b t", "vote A better / B better / tie"], ["n", "next pair"], ["u or Ctrl + Z", "undo the vote"],
    ["m", "write a note"]],
  compare: [],
};

function node(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmt(v) {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : Number(v).toPrecision(3);
}

function render({ model, el }) {
  const root = node("div", "evk");
  root.tabIndex = 0;
  root.setAttribute("data-lm-suppress-shortcuts", "true"); // Lumino skips shortcuts below this
  el.appendChild(root);

  const header = node("div", "evk-header");
  const progress = node("span", "evk-progress");
  const status = node("span", "evk-status");
  const hint = node("span", "evk-hint", "click the player, then ? for keys");
  const helpBtn = node("button", "evk-helpbtn", "?");
  header.append(progress, status, hint, helpBtn);
  const panelsEl = node("div", "evk-panels");
  const transport = node("div", "evk-transport");
  const promptEl = node("div", "evk-prompt");
  const controls = node("div", "evk-controls");
  const eventsEl = node("div", "evk-events");
  const help = node("div", "evk-help");
  help.hidden = true;
  root.append(header, panelsEl, transport, promptEl, controls, eventsEl, help);

  let panels = [];
  let urls = [];
  let lastSent = 0;
  const listeners = [];
  const on = (name, fn) => { model.on(name, fn); listeners.push([name, fn]); };
  const mode = () => model.get("mode");
  const send = (msg) => model.send(msg);
  const master = () => panels[0];

  function button(text, cls, action, title) {
    const b = node("button", cls, text);
    if (title) b.title = title;
    b.addEventListener("click", (e) => { e.stopPropagation(); action(); root.focus(); });
    return b;
  }

  // --- time and frames ------------------------------------------------------------------
  const clampFrame = (p, f) => Math.max(0, Math.min(p.clip.num_frames - 1, f));
  const frameAt = (p, t) => clampFrame(p, Math.floor(t * p.clip.fps + 1e-6));

  function seekTime(t, sync = true) {
    for (const p of panels) {
      p.target = frameAt(p, t);
      p.video.currentTime = (p.target + 0.5) / p.clip.fps; // mid-frame: no rounding onto a neighbour
      p.live = null;
    }
    if (sync) sendFrame(master().target, true);
    update();
  }
  const seekFrame = (f, sync = true) => seekTime((clampFrame(master(), f) + 0.5) / master().clip.fps, sync);

  function sendFrame(f, now) {
    const t = performance.now();
    if (model.get("frame") === f || (!now && t - lastSent < 250)) return;
    lastSent = t;
    model.set("frame", f);
    model.save_changes();
  }

  function shownFrame(p) {
    if (model.get("playing") && p.live !== null) return p.live;
    if (model.get("playing")) return frameAt(p, p.video.currentTime);
    return p.target;
  }

  function setPlaying(value) {
    if (!panels.length || model.get("playing") === value) return;
    model.set("playing", value);
    model.save_changes();
  }

  function applyPlaying() {
    if (!panels.length) return;
    if (model.get("playing")) {
      const t = master().video.currentTime;
      for (const p of panels) {
        p.video.playbackRate = model.get("rate");
        if (p !== master()) p.video.currentTime = Math.min(t, p.video.duration || t);
        p.video.play().catch(() => setPlaying(false));
      }
      tick();
    } else {
      for (const p of panels) p.video.pause();
      const m = master();
      const f = m.live !== null ? m.live : frameAt(m, m.video.currentTime);
      seekFrame(f);
    }
  }

  function tick(now, meta) {
    if (!model.get("playing") || !panels.length) return;
    const m = master();
    const t = meta ? meta.mediaTime : m.video.currentTime;
    m.live = clampFrame(m, Math.round(t * m.clip.fps - (meta ? 0 : 0.5)));
    for (const p of panels.slice(1)) {
      if (Math.abs(p.video.currentTime - t) > 1.5 / p.clip.fps && t < (p.video.duration || Infinity)) p.video.currentTime = t;
      p.live = frameAt(p, p.video.currentTime);
    }
    sendFrame(m.live, false);
    update();
    if (m.video.requestVideoFrameCallback) m.video.requestVideoFrameCallback(tick);
    else requestAnimationFrame(() => tick());
  }

  // --- panels ---------------------------------------------------------------------------
  function build() {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    panels = [];
    panelsEl.replaceChildren();
    const clips = model.get("clips") || [];
    panelsEl.dataset.count = String(clips.length);
    clips.forEach((clip, i) => {
      const p = { clip, i, target: 0, live: null };
      p.el = node("div", "evk-panel");
      p.title = node("div", "evk-title");
      const stage = node("div", "evk-stage");
      p.video = document.createElement("video");
      p.video.muted = true;
      p.video.playsInline = true;
      p.video.preload = "auto";
      const url = URL.createObjectURL(new Blob([clip.video], { type: "video/mp4" }));
      urls.push(url);
      p.video.src = url;
      p.overlay = node("canvas", "evk-overlay");
      stage.append(p.video, p.overlay);
      p.timeline = node("canvas", "evk-timeline");
      p.timeline.addEventListener("click", (e) => {
        const r = p.timeline.getBoundingClientRect();
        const f = clampFrame(p, Math.floor(((e.clientX - r.left) / r.width) * p.clip.num_frames));
        setPlaying(false);
        seekTime((f + 0.5) / p.clip.fps);
        root.focus();
      });
      p.scores = node("table", "evk-scores");
      p.el.append(p.title, stage, p.timeline, p.scores);
      p.video.addEventListener("loadedmetadata", () => { p.video.currentTime = (p.target + 0.5) / p.clip.fps; update(); });
      p.video.addEventListener("seeked", () => update());
      if (clip.overlay) p.map = prepareOverlay(clip.overlay);
      panelsEl.append(p.el);
      panels.push(p);
    });
    promptEl.textContent = clips.length && clips[0].prompt ? `prompt: ${clips[0].prompt}` : "";
    buildTransport();
    buildControls();
    buildEvents();
    if (panels.length) {
      master().video.addEventListener("ended", () => { master().live = master().clip.num_frames - 1; setPlaying(false); });
      master().target = clampFrame(master(), model.get("frame"));
      seekFrame(master().target, false);
    }
  }

  function prepareOverlay(overlay) {
    const [t, h, w] = overlay.shape;
    const dv = overlay.data;
    const bytes = new Uint8Array(dv.buffer, dv.byteOffset, dv.byteLength);
    const canvas = node("canvas");
    canvas.width = w;
    canvas.height = h;
    return { t, h, w, bytes, canvas, image: canvas.getContext("2d").createImageData(w, h) };
  }

  function drawOverlay(p) {
    const c = p.overlay;
    const show = model.get("show_overlay") && p.map;
    c.hidden = !show;
    if (!show) return;
    const { t, h, w, bytes, canvas, image } = p.map;
    const f = Math.min(shownFrame(p), t - 1);
    for (let k = 0; k < h * w; k++) {
      const v = bytes[f * h * w + k];
      image.data.set([255, 30, 30, Math.round(v * 0.75)], k * 4);
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
    c.width = p.video.clientWidth || 320;
    c.height = p.video.clientHeight || 240;
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.drawImage(canvas, 0, 0, c.width, c.height);
  }

  function drawTimeline(p) {
    const lanes = p.clip.lanes || [];
    const T = p.clip.num_frames;
    const laneH = panels.length > 1 ? 24 : 32;
    const labelH = 14;
    const W = Math.max(120, p.timeline.clientWidth || 480);
    const H = lanes.length * laneH + labelH + 2;
    const dpr = window.devicePixelRatio || 1;
    p.timeline.width = W * dpr;
    p.timeline.height = H * dpr;
    p.timeline.style.height = `${H}px`;
    const ctx = p.timeline.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#f7f7f7";
    ctx.fillRect(0, 0, W, H);
    const x = (f) => (f / T) * W;
    const events = p.clip.events || [];
    lanes.forEach((lane, i) => {
      const y0 = i * laneH;
      ctx.fillStyle = "rgba(214,39,40,0.22)";
      for (const e of events) if (e.detector === lane.detector) ctx.fillRect(x(e.start), y0, x(e.end + 1) - x(e.start), laneH);
      const values = lane.series.filter((v) => v !== null);
      if (lane.threshold !== null && lane.threshold !== undefined) values.push(lane.threshold);
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      const y = (v) => y0 + laneH - 3 - ((v - lo) / (hi - lo || 1)) * (laneH - 14);
      if (lane.threshold !== null && lane.threshold !== undefined && values.length) {
        ctx.strokeStyle = "#999";
        ctx.setLineDash([3, 3]);
        ctx.beginPath();
        ctx.moveTo(0, y(lane.threshold));
        ctx.lineTo(W, y(lane.threshold));
        ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.strokeStyle = "#1f77b4";
      ctx.lineWidth = 1.2;
      ctx.beginPath();
      let pen = false;
      lane.series.forEach((v, t) => {
        if (v === null) { pen = false; return; }
        const px = x(t + 0.5);
        if (pen) ctx.lineTo(px, y(v)); else ctx.moveTo(px, y(v));
        pen = true;
      });
      ctx.stroke();
      ctx.fillStyle = lane.flagged ? "#c62828" : "#333";
      ctx.font = "10px sans-serif";
      ctx.fillText(`${lane.detector} ${fmt(lane.score)}${lane.flagged ? " ⚑" : ""}`, 4, y0 + 10);
      ctx.fillStyle = "#ddd";
      ctx.fillRect(0, y0 + laneH - 1, W, 1);
    });
    const y0 = lanes.length * laneH;
    const labels = mode() === "review" ? model.get("labels") || [] : [];
    ctx.fillStyle = "#ef6c00";
    for (const l of labels) if (l.kind === "span") ctx.fillRect(x(l.start), y0 + 2, x(l.end + 1) - x(l.start), labelH - 4);
    const span = mode() === "review" ? model.get("pending_span") || [] : [];
    if (span.length) {
      const end = span.length > 1 ? span[1] : shownFrame(p);
      const [a, b] = [Math.min(span[0], end), Math.max(span[0], end)];
      ctx.fillStyle = "rgba(25,118,210,0.35)";
      ctx.fillRect(x(a), 0, x(b + 1) - x(a), H);
    }
    const f = shownFrame(p);
    ctx.fillStyle = "#0d47a1";
    ctx.fillRect(x(f + 0.5) - 1, 0, 2, H);
  }

  function fillScores(p) {
    const revealed = model.get("revealed");
    const reveal = model.get("reveal") || [];
    const ab = mode() === "ab";
    const title = ab ? (p.i === 0 ? "A" : "B") + (revealed && reveal[p.i] ? ` = ${reveal[p.i].title}` : "") : p.clip.title;
    p.title.replaceChildren(node("b", null, title), node("span", "evk-sub", ab ? "" : ` ${p.clip.subtitle || ""}`));
    const rows = ab ? (revealed && reveal[p.i] ? reveal[p.i].scores : []) : p.clip.lanes;
    p.scores.replaceChildren();
    for (const r of rows) {
      const tr = node("tr", r.flagged ? "evk-flagged" : null);
      tr.append(node("td", null, r.detector), node("td", null, fmt(r.score)), node("td", null, r.flagged ? "flagged" : ""));
      p.scores.append(tr);
    }
  }

  // --- controls -------------------------------------------------------------------------
  let frameEl, rateSel, overlayBox;
  function buildTransport() {
    transport.replaceChildren();
    const play = button("▶ / ❚❚", "evk-play", () => setPlaying(!model.get("playing")), "Space");
    const back = button("◀ 1", null, () => step(-1), ",");
    const fwd = button("1 ▶", null, () => step(1), ".");
    frameEl = node("span", "evk-frame");
    rateSel = node("select", "evk-rate");
    for (const r of RATES) { const o = node("option", null, `${r}×`); o.value = String(r); rateSel.append(o); }
    rateSel.value = String(model.get("rate"));
    rateSel.addEventListener("change", () => { model.set("rate", Number(rateSel.value)); model.save_changes(); root.focus(); });
    transport.append(back, play, fwd, frameEl, rateSel);
    if (panels.some((p) => p.map)) {
      const label = node("label", "evk-overlay-toggle");
      overlayBox = node("input");
      overlayBox.type = "checkbox";
      overlayBox.checked = model.get("show_overlay");
      overlayBox.addEventListener("change", () => { model.set("show_overlay", overlayBox.checked); model.save_changes(); root.focus(); });
      label.append(overlayBox, node("span", null, ` map overlay (${panels.find((p) => p.map).clip.overlay.detector})`));
      transport.append(label);
    }
  }

  function verdicts() {
    const out = {};
    for (const l of model.get("labels") || []) if (l.kind === "clip") out[l.failure_mode] = l.value;
    return out;
  }

  function noteBox() {
    const note = node("textarea", "evk-note");
    note.placeholder = "note (m)";
    note.rows = 2;
    note.value = model.get("note") || "";
    note.addEventListener("change", () => send({ event: "note", text: note.value }));
    return note;
  }

  function buildControls() {
    controls.replaceChildren();
    const fms = model.get("failure_modes") || [];
    if (mode() === "review" && panels.length) {
      const v = verdicts();
      const row = node("div", "evk-verdicts");
      fms.forEach((fm, i) => {
        const state = v[fm.key] || "–";
        row.append(button(`⇧${i + 1} ${fm.key}: ${state}`, `evk-verdict evk-${state === "–" ? "none" : state}`,
          () => send({ event: "verdict", failure_mode: fm.key }), fm.meaning));
      });
      const span = model.get("pending_span") || [];
      const spanRow = node("div", "evk-span");
      spanRow.append(button("[ in", null, () => send({ event: "mark_in", frame: shownFrame(master()) })),
        button("] out", null, () => send({ event: "mark_out", frame: shownFrame(master()) })),
        node("span", null, span.length ? `span ${span[0]}–${span.length > 1 ? span[1] : "…"}: press ⇧N to label it, Esc clears`
          : "no span marked"));
      for (const l of model.get("labels") || []) {
        if (l.kind === "span") spanRow.append(button(`${l.failure_mode} ${l.start}–${l.end}`, "evk-spanlabel", () => seekFrame(l.start)));
      }
      const actions = node("div", "evk-actions");
      actions.append(button("◀ prev (p)", null, () => send({ event: "prev" })), button("undo (u)", null, () => send({ event: "undo" })),
        button("submit (Enter)", "evk-submit", () => send({ event: "submit" })), button("next (n) ▶", null, () => send({ event: "next" })));
      controls.append(row, spanRow, noteBox(), actions);
    } else if (mode() === "ab" && panels.length) {
      const marks = model.get("ab_marks") || {};
      const sides = node("div", "evk-ab-marks");
      for (const side of ["A", "B"]) {
        const col = node("div", "evk-ab-side");
        col.append(node("b", null, side));
        for (const fm of fms) {
          const state = (marks[side] || {})[fm.key] || "–";
          col.append(button(`${fm.key}: ${state}`, `evk-verdict evk-${state === "–" ? "none" : state}`,
            () => send({ event: "mark", side, failure_mode: fm.key }), fm.meaning));
        }
        sides.append(col);
      }
      const votes = node("div", "evk-votes");
      const revealed = model.get("revealed");
      for (const [choice, text] of [["A", "A is better (a)"], ["tie", "tie (t)"], ["B", "B is better (b)"]]) {
        const b = button(text, "evk-vote", () => send({ event: "vote", choice }));
        b.disabled = revealed;
        votes.append(b);
      }
      votes.append(button("undo (u)", null, () => send({ event: "undo" })), button("next pair (n) ▶", null, () => send({ event: "next" })));
      controls.append(sides, noteBox(), votes);
    }
  }

  function buildEvents() {
    eventsEl.replaceChildren();
    if (mode() !== "review" || !panels.length) return;
    const events = master().clip.events || [];
    if (!events.length) { eventsEl.append(node("span", "evk-sub", "no detector events on this clip")); return; }
    eventsEl.append(node("b", null, "events "));
    for (const e of events) {
      eventsEl.append(button(`${e.detector} · ${e.kind} · ${e.start}–${e.end} · ${fmt(e.score)}`, "evk-event",
        () => { setPlaying(false); seekFrame(e.start); }));
    }
  }

  function buildHelp() {
    help.replaceChildren(node("b", null, "Keys (while the player has focus)"));
    const table = node("table");
    for (const [k, what] of [...KEYS.all, ...(KEYS[mode()] || [])]) {
      const tr = node("tr");
      tr.append(node("td", "evk-key", k), node("td", null, what));
      table.append(tr);
    }
    help.append(table);
  }

  function renderHeader() {
    const h = model.get("header") || {};
    const parts = [];
    if (h.title) parts.push(h.title);
    if (h.position) parts.push(`clip ${h.position[0]} / ${h.position[1]}`);
    if (h.reviewed) parts.push(`reviewed ${h.reviewed[0]} / ${h.reviewed[1]}`);
    progress.textContent = parts.join(" · ");
    status.textContent = model.get("status") || "";
    if (!panels.length && mode() === "ab") status.textContent = model.get("status") || "nothing to show";
  }

  function update() {
    if (!panels.length || !frameEl) return;
    for (const p of panels) { drawTimeline(p); drawOverlay(p); fillScores(p); }
    const m = master();
    const f = shownFrame(m);
    frameEl.textContent = `frame ${f} / ${m.clip.num_frames - 1} · ${(f / m.clip.fps).toFixed(2)} s`;
    frameEl.dataset.frame = String(f);
    frameEl.dataset.last = String(m.clip.num_frames - 1);
  }

  function step(n) {
    setPlaying(false);
    seekFrame(shownFrame(master()) + n);
  }

  function setRate(dir) {
    const i = RATES.indexOf(model.get("rate"));
    const next = RATES[Math.max(0, Math.min(RATES.length - 1, (i < 0 ? 2 : i) + dir))];
    model.set("rate", next);
    model.save_changes();
  }

  function toggleHelp(force) {
    help.hidden = force === undefined ? !help.hidden : !force;
    if (!help.hidden) buildHelp();
  }

  // --- keys -----------------------------------------------------------------------------
  function handleKey(e) {
    const { code, key } = e;
    if (!panels.length && !["?", "u", "n", "Escape"].includes(key)) return false;
    if (code === "Space") setPlaying(!model.get("playing"));
    else if (code === "Comma" || code === "Period") step((code === "Period" ? 1 : -1) * (e.shiftKey ? 10 : 1));
    else if (/^Digit\d$/.test(code) && e.shiftKey) {
      const n = Number(code.slice(5));
      if (mode() !== "review" || n < 1) return false;
      send({ event: "label_key", number: n, frame: shownFrame(master()) });
    } else if (/^Digit\d$/.test(code) && !e.altKey) {
      setPlaying(false);
      seekFrame(Math.floor((Number(code.slice(5)) / 10) * master().clip.num_frames));
    } else if (key === "?") toggleHelp();
    else if (key === "-") setRate(-1);
    else if (key === "=" || key === "+") setRate(1);
    else if (key === "o") { model.set("show_overlay", !model.get("show_overlay")); model.save_changes(); }
    else if (key === "Escape") { if (!help.hidden) toggleHelp(false); else if (mode() === "review") send({ event: "clear_span" }); }
    else if (key === "m") { const n = controls.querySelector("textarea"); if (n) n.focus(); else return false; }
    else if (key === "u") send({ event: "undo" });
    else if (key === "n" && mode() !== "compare") send({ event: "next" });
    else if (mode() === "review") {
      if (key === "[") send({ event: "mark_in", frame: shownFrame(master()) });
      else if (key === "]") send({ event: "mark_out", frame: shownFrame(master()) });
      else if (key === "Enter") send({ event: "submit" });
      else if (key === "p") send({ event: "prev" });
      else return false;
    } else if (mode() === "ab" && ["a", "b", "t"].includes(key)) {
      if (!model.get("revealed")) send({ event: "vote", choice: key === "t" ? "tie" : key.toUpperCase() });
    } else return false;
    return true;
  }

  root.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && t !== root && ["TEXTAREA", "INPUT", "SELECT"].includes(t.tagName)) {
      e.stopPropagation(); // typing a note must not trigger notebook shortcuts
      if (e.key === "Escape") root.focus();
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      if (e.key === "z" && !e.shiftKey) { send({ event: "undo" }); e.preventDefault(); e.stopPropagation(); }
      return; // other Ctrl/Cmd combinations (save, ...) stay JupyterLab's
    }
    const handled = handleKey(e);
    e.stopPropagation(); // plain keys never reach JupyterLab (m, 1, a, b, d d ... are its cell commands)
    if (handled) e.preventDefault();
  });
  root.addEventListener("click", () => { if (document.activeElement !== root && !root.contains(document.activeElement)) root.focus(); });
  root.addEventListener("focus", () => root.classList.add("evk-focused"));
  root.addEventListener("blur", () => root.classList.remove("evk-focused"));
  helpBtn.addEventListener("click", (e) => { e.stopPropagation(); toggleHelp(); root.focus(); });

  // --- model -> view --------------------------------------------------------------------
  on("change:clips", build);
  on("change:frame", () => {
    const f = model.get("frame");
    if (panels.length && !model.get("playing") && f !== master().target) seekFrame(f, false);
  });
  on("change:playing", applyPlaying);
  on("change:rate", () => { for (const p of panels) p.video.playbackRate = model.get("rate"); if (rateSel) rateSel.value = String(model.get("rate")); });
  on("change:show_overlay", () => { if (overlayBox) overlayBox.checked = model.get("show_overlay"); update(); });
  on("change:labels", () => { buildControls(); update(); });
  on("change:pending_span", () => { buildControls(); update(); });
  on("change:failure_modes", buildControls);
  on("change:ab_marks", buildControls);
  on("change:revealed", () => { buildControls(); update(); });
  on("change:reveal", update);
  on("change:header", renderHeader);
  on("change:status", renderHeader);
  on("change:note", () => {
    const n = controls.querySelector("textarea");
    if (n && document.activeElement !== n) n.value = model.get("note") || "";
  });

  const resize = new ResizeObserver(() => update());
  resize.observe(panelsEl);
  build();
  renderHeader();

  return () => {
    resize.disconnect();
    for (const [name, fn] of listeners) model.off(name, fn);
    for (const p of panels) p.video.pause();
    for (const u of urls) URL.revokeObjectURL(u);
  };
}

export default { render };
