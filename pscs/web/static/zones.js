// Privacy-zone editor (U4): draw polygons on a current (masked) snapshot in normalised
// coordinates, propose them for approval; approve or reject proposals.  Mouse or keyboard.
"use strict";
(function () {
  const root = document.getElementById("zone-editor");
  if (!root) return;
  const cameraId = root.dataset.cameraId;
  const csrf = root.dataset.csrf;
  const canvas = document.getElementById("zone-canvas");
  const ctx = canvas.getContext("2d");
  const status = document.getElementById("zone-status");
  const list = document.getElementById("zone-list");
  const inForce = JSON.parse(root.dataset.inForce || "[]");
  let zones = [];
  let open = [];
  let shown = null;
  let cursor = [0.5, 0.5];
  let background = null;

  function say(message, ok) {
    status.textContent = message;
    status.className = "status " + (ok ? "ok" : "err");
  }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method, headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(((data.error || {}).message || response.statusText) + ((data.error || {}).clause ? " (" + data.error.clause + ")" : ""));
    return data;
  }

  function poly(points, stroke, fill) {
    if (!points.length) return;
    ctx.beginPath();
    points.forEach(([px, py], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, px * canvas.width, py * canvas.height));
    if (fill) { ctx.closePath(); ctx.fillStyle = fill; ctx.fill(); }
    ctx.strokeStyle = stroke; ctx.lineWidth = 3; ctx.stroke();
  }

  function draw() {
    ctx.fillStyle = "#1e293b";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (background) ctx.drawImage(background, 0, 0, canvas.width, canvas.height);
    else {
      ctx.strokeStyle = "#334155";
      for (let i = 1; i < 10; i++) {
        ctx.beginPath(); ctx.moveTo((i * canvas.width) / 10, 0); ctx.lineTo((i * canvas.width) / 10, canvas.height); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, (i * canvas.height) / 10); ctx.lineTo(canvas.width, (i * canvas.height) / 10); ctx.stroke();
      }
    }
    for (const z of inForce) poly(z.points, "#1d4ed8", null);
    for (const z of shown || []) poly(z.points, "#22d3ee", "rgba(34,211,238,.25)");
    for (const z of zones) poly(z.points, "#f97316", "rgba(249,115,22,.35)");
    poly(open, "#fb923c", null);
    ctx.strokeStyle = "#fff";
    ctx.strokeRect(cursor[0] * canvas.width - 6, cursor[1] * canvas.height - 6, 12, 12);
    if (list) {
      list.innerHTML = "";
      zones.forEach((z, i) => {
        const li = document.createElement("li");
        li.textContent = (z.label || "zone " + (i + 1)) + " — " + z.points.length + " points ";
        const del = document.createElement("button");
        del.type = "button"; del.textContent = "Remove";
        del.addEventListener("click", () => { zones.splice(i, 1); draw(); });
        li.appendChild(del);
        list.appendChild(li);
      });
    }
  }

  function addPoint(p) { open.push([Math.min(1, Math.max(0, p[0])), Math.min(1, Math.max(0, p[1]))]); draw(); }
  function closePolygon() {
    if (open.length >= 3) { zones.push({ label: "zone " + (zones.length + 1), points: open }); open = []; draw(); say("Polygon closed.", true); }
    else say("A zone needs at least 3 points.", false);
  }

  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    cursor = [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
    addPoint(cursor);
    canvas.focus();
  });
  canvas.addEventListener("dblclick", (ev) => { ev.preventDefault(); open.pop(); closePolygon(); });
  canvas.addEventListener("keydown", (ev) => {
    const step = ev.shiftKey ? 0.05 : 0.01;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (ev.key in moves) {
      cursor = [Math.min(1, Math.max(0, cursor[0] + moves[ev.key][0])), Math.min(1, Math.max(0, cursor[1] + moves[ev.key][1]))];
      draw();
    } else if (ev.key === " ") addPoint(cursor);
    else if (ev.key === "Enter") closePolygon();
    else if (ev.key === "Backspace") { open.pop(); draw(); }
    else if (ev.key === "Escape") { open = []; draw(); }
    else return;
    ev.preventDefault();
  });

  const byId = (id) => document.getElementById(id);
  if (byId("zones-start-from-current")) {
    byId("zones-start-from-current").addEventListener("click", () => { zones = JSON.parse(JSON.stringify(inForce)); draw(); });
    byId("zones-clear").addEventListener("click", () => { zones = []; open = []; draw(); });
    byId("zones-propose").addEventListener("click", async () => {
      try {
        const data = await call("POST", "/api/v1/cameras/" + cameraId + "/zones", { zones, note: byId("zone-note").value || null });
        say("Version " + data.version.version + " proposed; a supervisor must approve it before it takes effect.", true);
        setTimeout(() => location.reload(), 800);
      } catch (err) { say(err.message, false); }
    });
  }

  document.getElementById("zone-versions").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    if (button.dataset.action === "show") { shown = JSON.parse(button.dataset.zones); draw(); return; }
    try {
      await call("POST", "/api/v1/zones/" + row.dataset.versionId + "/" + button.dataset.action, { note: null });
      say("Version " + button.dataset.action + "d.", true);
      setTimeout(() => location.reload(), 600);
    } catch (err) { say(err.message, false); }
  });

  if (root.dataset.canSnapshot === "1") {
    const img = new Image();
    img.onload = () => { background = img; canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; draw(); };
    img.onerror = () => { document.getElementById("snapshot-note").textContent = "The camera sent no picture; drawing on a blank area."; };
    img.src = "/api/v1/cameras/" + cameraId + "/snapshot";
  }
  draw();
})();
