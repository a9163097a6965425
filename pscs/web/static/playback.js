// Playback: timeline (recorded ranges, gaps, holds), jump to a time, 1x/2x/4x, step,
// snapshot, and a storage request for a marked range.  Video comes from the server as
// fragmented MP4 (masked there when the camera has privacy zones) through MSE.
"use strict";
(function () {
  const PSCS = window.PSCS;
  const root = document.getElementById("playback");
  if (!root) return;
  const cameraId = root.dataset.cameraId;
  const video = document.getElementById("playback-video");
  const stateEl = document.getElementById("playback-state");
  const clock = document.getElementById("playback-clock");
  const badges = document.getElementById("playback-badges");
  const canvas = document.getElementById("timeline");
  const DAY = 24 * 3600 * 1000;
  let view = { start: Date.now() - DAY, end: Date.now() };
  let data = { ranges: [], gaps: [], holds: [] };
  let origin = null; // wall-clock ms of media time 0
  let session = 0;
  let controller = null;
  let marks = { in: null, out: null };

  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text || "";
  }

  function wallNow() {
    return origin === null ? NaN : origin + video.currentTime * 1000;
  }

  // Timeline --------------------------------------------------------------------------------
  async function loadTimeline() {
    view = { start: Date.now() - DAY, end: Date.now() };
    const url = "/api/v1/playback/" + cameraId + "/timeline?start_ms=" + Math.round(view.start) + "&end_ms=" + Math.round(view.end);
    try {
      data = await (await fetch(url)).json();
    } catch (e) { /* keep the last one */ }
    document.getElementById("timeline-range").textContent =
      PSCS.formatWall(view.start).slice(0, 16) + " → " + PSCS.formatWall(view.end).slice(0, 16) + " UTC";
    draw();
  }

  function x(ms) {
    return ((ms - view.start) / (view.end - view.start)) * canvas.width;
  }

  function draw() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const band = (items, color, y, h) => {
      ctx.fillStyle = color;
      for (const r of items || []) ctx.fillRect(x(r.start_ms), y, Math.max(1, x(r.end_ms) - x(r.start_ms)), h);
    };
    band(data.ranges, "#16a34a", 12, 28);
    band(data.gaps, "#dc2626", 12, 28);
    band(data.holds, "#7c3aed", 2, 8);
    ctx.fillStyle = "#475569";
    for (let h = Math.ceil(view.start / 3600000) * 3600000; h < view.end; h += 3600000) ctx.fillRect(x(h), 40, 1, 8);
    const now = wallNow();
    if (isFinite(now)) {
      ctx.fillStyle = "#0f172a";
      ctx.fillRect(x(now) - 1, 0, 3, canvas.height);
    }
  }

  canvas.addEventListener("click", (ev) => {
    const rect = canvas.getBoundingClientRect();
    play(view.start + ((ev.clientX - rect.left) / rect.width) * (view.end - view.start));
  });
  canvas.addEventListener("keydown", (ev) => {
    const now = isFinite(wallNow()) ? wallNow() : view.end - 60000;
    if (ev.key === "ArrowLeft") { play(now - 10000); ev.preventDefault(); }
    if (ev.key === "ArrowRight") { play(now + 10000); ev.preventDefault(); }
  });

  // Streaming ---------------------------------------------------------------------------------
  function buffered(t) {
    for (let i = 0; i < video.buffered.length; i++) {
      if (t >= video.buffered.start(i) && t < video.buffered.end(i)) return i;
    }
    return -1;
  }

  function seekWithin(ms) {
    if (origin === null) return false;
    const t = (ms - origin) / 1000;
    if (buffered(t) < 0) return false;
    video.currentTime = t;
    return true;
  }

  async function play(ms) {
    ms = Math.round(ms);
    if (seekWithin(ms)) return;
    const mine = ++session;
    if (controller) controller.abort();
    controller = new AbortController();
    setState("connecting", "loading " + PSCS.formatWall(ms) + "…");
    let response;
    try {
      response = await fetch("/api/v1/playback/" + cameraId + "/stream?start_ms=" + ms, { signal: controller.signal });
    } catch (e) {
      if (mine === session) setState("error", "could not load: " + e.message);
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      const err = body.error || {};
      setState("error", (err.message || response.statusText) + (err.clause ? " (" + err.clause + ")" : ""));
      return;
    }
    origin = Number(response.headers.get("X-Pscs-Origin-Ms"));
    const viewId = response.headers.get("X-Pscs-View");
    const codec = response.headers.get("X-Pscs-Codec") || "avc1.42e01e";
    const masked = response.headers.get("X-Pscs-Masked") === "1";
    badges.innerHTML = '<span class="badge ' + (masked ? "masked" : "") + '">' + (masked ? "masked" : "no zones") + "</span>";
    const ms_ = new MediaSource();
    video.src = URL.createObjectURL(ms_);
    await new Promise((resolve) => ms_.addEventListener("sourceopen", resolve, { once: true }));
    const sb = ms_.addSourceBuffer('video/mp4; codecs="' + codec + '"');
    const appended = () => new Promise((resolve) => sb.addEventListener("updateend", resolve, { once: true }));
    const reader = response.body.getReader();
    let first = true;
    while (mine === session) {
      const ahead = video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : 0;
      if (!first && ahead > 30) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        break;
      }
      if (chunk.done) {
        if (mine === session) explainEnd(viewId);
        if (mine === session && ms_.readyState === "open") {
          if (sb.updating) await appended();
          try { ms_.endOfStream(); } catch (e) { /* already ended */ }
        }
        break;
      }
      if (sb.updating) await appended();
      try {
        sb.appendBuffer(chunk.value);
      } catch (e) {
        // Quota: drop what was watched long ago and try again.
        if (video.buffered.length && video.currentTime - video.buffered.start(0) > 10) {
          sb.remove(video.buffered.start(0), video.currentTime - 5);
          await appended();
          sb.appendBuffer(chunk.value);
        } else {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
      }
      await appended();
      if (first && video.buffered.length) {
        first = false;
        video.currentTime = Math.max(video.buffered.start(0), (ms - origin) / 1000);
        setState("online", "");
        video.play().catch(() => {});
      }
    }
    reader.cancel().catch(() => {});
  }

  // A stream that pscs ended (purpose, sign-in or account gone) says why in its view.
  async function explainEnd(viewId) {
    if (!viewId) return;
    const response = await fetch("/api/v1/views/" + encodeURIComponent(viewId)).catch(() => null);
    if (!response || !response.ok) {
      if (response && response.status === 401) setState("error", "signed out: playback stopped");
      return;
    }
    const view = await response.json();
    if (view.state === "ended") setState("error", "playback stopped: " + view.reason + (view.clause ? " (" + view.clause + ")" : ""));
  }

  // Step over recording gaps: jump to the next buffered range.
  setInterval(() => {
    const t = video.currentTime;
    if (!video.paused && video.buffered.length && buffered(t) < 0) {
      for (let i = 0; i < video.buffered.length; i++) {
        if (video.buffered.start(i) > t) {
          video.currentTime = video.buffered.start(i);
          break;
        }
      }
    }
    clock.textContent = PSCS.formatWall(wallNow());
    draw();
  }, 250);

  // Controls ----------------------------------------------------------------------------------
  document.getElementById("jump-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = document.getElementById("jump-to").value;
    const ms = Date.parse(value + (value.length === 16 ? ":00Z" : "Z"));
    if (isFinite(ms)) play(ms);
  });
  const togglePlay = () => (video.paused ? video.play().catch(() => {}) : video.pause());
  document.getElementById("play-pause").addEventListener("click", togglePlay);
  const setRate = (rate) => {
    video.playbackRate = rate;
    for (const b of root.querySelectorAll("button[data-rate]")) b.setAttribute("aria-pressed", String(Number(b.dataset.rate) === rate));
  };
  for (const b of root.querySelectorAll("button[data-rate]")) b.addEventListener("click", () => setRate(Number(b.dataset.rate)));
  const step = (dir) => {
    video.pause();
    video.currentTime = Math.max(0, video.currentTime + dir * 0.04);
  };
  document.getElementById("step-back").addEventListener("click", () => step(-1));
  document.getElementById("step-fwd").addEventListener("click", () => step(1));
  document.getElementById("snapshot").addEventListener("click", () => {
    const ms = wallNow();
    if (isFinite(ms)) window.open("/api/v1/cameras/" + cameraId + "/snapshot?at_ms=" + Math.round(ms), "_blank", "noopener");
  });
  const link = document.getElementById("storage-request");
  const showMarks = () => {
    const text = document.getElementById("marked-range");
    if (marks.in !== null && marks.out !== null && marks.out > marks.in) {
      text.textContent = PSCS.formatWall(marks.in) + " → " + PSCS.formatWall(marks.out);
      link.href = "/records/requests/new?camera_id=" + cameraId + "&start_ms=" + Math.round(marks.in) + "&end_ms=" + Math.round(marks.out);
      link.removeAttribute("aria-disabled");
    } else {
      text.textContent = marks.in !== null ? "From " + PSCS.formatWall(marks.in) + " — mark the end." : "No range marked.";
      link.href = "#";
      link.setAttribute("aria-disabled", "true");
    }
  };
  document.getElementById("mark-in").addEventListener("click", () => { marks.in = wallNow(); showMarks(); });
  document.getElementById("mark-out").addEventListener("click", () => { marks.out = wallNow(); showMarks(); });
  link.addEventListener("click", (ev) => { if (link.getAttribute("aria-disabled")) ev.preventDefault(); });

  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input, select, textarea")) return;
    if (ev.key === "k" || ev.key === "K") togglePlay();
    else if (ev.key === ",") step(-1);
    else if (ev.key === ".") step(1);
    else if (ev.key === "1" || ev.key === "2" || ev.key === "4") setRate(Number(ev.key));
  });

  // Mask-lift banner for this camera, if the user holds one.
  fetch("/api/v1/console/cameras").then((r) => r.json()).then((d) => {
    const cam = (d.cameras || []).find((c) => String(c.id) === String(cameraId));
    if (cam) PSCS.showLift(cam.mask_lift);
  }).catch(() => {});

  window.pscsPlayback = { play, wallNow, video, get origin() { return origin; } };
  loadTimeline().then(() => {
    const last = data.ranges.length ? data.ranges[data.ranges.length - 1] : null;
    if (last) {
      const start = Math.max(last.start_ms, last.end_ms - 60000);
      document.getElementById("jump-to").value = new Date(start).toISOString().slice(0, 19);
    }
  });
  setInterval(loadTimeline, 60000);
})();
