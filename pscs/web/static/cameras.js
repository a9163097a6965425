// Camera registration and enable/disable: calls the JSON API with the session's CSRF token.
"use strict";
(function () {
  const table = document.getElementById("cameras");
  const status = document.getElementById("cameras-status");
  const csrf = table.dataset.csrf;

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.closest("tr").dataset.cameraId;
    try {
      await call("PATCH", "/api/v1/cameras/" + id, { enabled: button.dataset.action === "enable" });
      location.reload();
    } catch (err) {
      status.textContent = err.message;
      status.className = "status err";
    }
  });

  document.getElementById("new-camera").addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = event.target;
    const optional = (v) => (v.trim() === "" ? null : v.trim());
    try {
      await call("POST", "/api/v1/cameras", {
        name: f.name.value.trim(), street_address: f.street_address.value.trim(),
        latitude: Number(f.latitude.value), longitude: Number(f.longitude.value), kind: f.kind.value,
        main_url: f.main_url.value.trim(), sub_url: optional(f.sub_url.value), onvif_url: optional(f.onvif_url.value),
        public_area_attested: f.public_area_attested.checked,
      });
      location.reload();
    } catch (err) {
      status.textContent = err.message;
      status.className = "status err";
    }
  });
})();
