// User administration: calls the JSON API with the session's CSRF token.
"use strict";
(function () {
  const table = document.getElementById("users");
  const status = document.getElementById("users-status");
  const csrf = table.dataset.csrf;

  function say(message, ok) {
    status.textContent = message;
    status.className = "status " + (ok ? "ok" : "err");
  }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    const user = row.dataset.username;
    const base = "/api/v1/users/" + encodeURIComponent(user);
    try {
      switch (button.dataset.action) {
        case "roles": {
          const roles = [...row.querySelectorAll("input[name=role]:checked")].map((i) => i.value);
          await call("PATCH", base, { roles });
          say("Roles of " + user + " saved.", true);
          return;
        }
        case "disable": await call("PATCH", base, { disabled: true }); break;
        case "enable": await call("PATCH", base, { disabled: false }); break;
        case "reset-mfa": await call("POST", base + "/reset-mfa"); break;
        case "reset-password": {
          const data = await call("POST", base + "/reset-password");
          say("One-time password for " + user + ": " + data.one_time_password + " (shown once)", true);
          return;
        }
      }
      location.reload();
    } catch (err) {
      say(err.message, false);
    }
  });

  document.getElementById("new-user").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const roles = [...form.querySelectorAll("input[name=role]:checked")].map((i) => i.value);
    try {
      const data = await call("POST", "/api/v1/users", {
        username: form.username.value, full_name: form.full_name.value, roles,
      });
      say("Created " + data.username + ". One-time password: " + data.one_time_password + " (shown once)", true);
    } catch (err) {
      say(err.message, false);
    }
  });
})();
