// Designated locations (U2) and mask lifts (U4): forms and decisions over the JSON API.
"use strict";
(function () {
  const csrfEl = document.querySelector("[data-csrf]");
  const csrf = csrfEl ? csrfEl.dataset.csrf : "";
  const status = document.getElementById("designation-status") || document.getElementById("lift-status");

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

  const done = (message) => { say(message, true); setTimeout(() => location.reload(), 700); };

  const designation = document.getElementById("new-designation");
  if (designation) {
    designation.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = designation;
      const cameras = [...f.querySelectorAll("input[name=camera]:checked")].map((i) => Number(i.value));
      try {
        await call("POST", "/api/v1/designations", {
          location: f.location.value, reason: f.reason.value, camera_ids: cameras,
          valid_until: f.valid_until.value + (f.valid_until.value.length === 16 ? ":00Z" : "Z"),
        });
        done("Location designated.");
      } catch (err) { say(err.message, false); }
    });
    document.getElementById("designations").addEventListener("click", async (ev) => {
      const b = ev.target.closest("button[data-action=revoke]");
      if (!b) return;
      const reason = window.prompt("Why is this designation revoked?");
      if (!reason) return;
      try {
        await call("POST", "/api/v1/designations/" + b.closest("tr").dataset.id + "/revoke", { reason });
        done("Designation revoked.");
      } catch (err) { say(err.message, false); }
    });
  }

  const lift = document.getElementById("new-lift");
  if (lift) {
    lift.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await call("POST", "/api/v1/cameras/" + lift.camera_id.value + "/mask-lifts", {
          warrant_reference: lift.warrant_reference.value, reason: lift.reason.value, minutes: Number(lift.minutes.value),
        });
        done("Requested; a second authorised person must approve it.");
      } catch (err) { say(err.message, false); }
    });
  }
  const lifts = document.getElementById("lifts");
  if (lifts) {
    lifts.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button[data-action]");
      if (!b) return;
      try {
        await call("POST", "/api/v1/mask-lifts/" + b.closest("tr").dataset.id + "/" + b.dataset.action);
        done("Done.");
      } catch (err) { say(err.message, false); }
    });
  }
})();
