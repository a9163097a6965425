// Operator console: purpose-session countdown, live players (MSE + fragmented MP4 over
// WebSocket), the live grid's keyboard navigation, and the mask-lift banner.
// No third-party code.  Pictures arrive masked from the server; nothing is unmasked here.
"use strict";
(function () {
  const PSCS = (window.PSCS = window.PSCS || {});

  // Helpers ------------------------------------------------------------------------------
  PSCS.csrf = function () {
    const el = document.querySelector("[data-csrf]");
    return el ? el.dataset.csrf : "";
  };

  PSCS.api = async function (method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": PSCS.csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = data.error || {};
      throw new Error((err.message || response.statusText) + (err.clause ? " (" + err.clause + ")" : ""));
    }
    return data;
  };

  PSCS.formatWall = function (ms) {
    if (!isFinite(ms)) return "—";
    return new Date(ms).toISOString().replace("T", " ").slice(0, 23) + "Z";
  };

  // The codec string of an init segment, from its avcC box: avc1.PPCCLL
  PSCS.codecOf = function (u8) {
    for (let i = 0; i + 8 < u8.length; i++) {
      if (u8[i] === 0x61 && u8[i + 1] === 0x76 && u8[i + 2] === 0x63 && u8[i + 3] === 0x43) {
        const hex = (b) => b.toString(16).padStart(2, "0");
        return "avc1." + hex(u8[i + 5]) + hex(u8[i + 6]) + hex(u8[i + 7]);
      }
    }
    return "avc1.42e01e";
  };

  PSCS.isInit = function (u8) {
    return u8.length > 8 && u8[4] === 0x66 && u8[5] === 0x74 && u8[6] === 0x79 && u8[7] === 0x70; // ftyp
  };

  // Purpose session: countdown, "expiring" warning, and leaving when it ends ---------------
  const bar = document.getElementById("purpose-bar");
  if (bar) {
    const expires = Date.parse(bar.dataset.expiresAt);
    const left = document.getElementById("purpose-left");
    const tick = () => {
      const seconds = Math.max(0, Math.round((expires - Date.now()) / 1000));
      const m = Math.floor(seconds / 60), s = seconds % 60;
      left.textContent = m + " min " + String(s).padStart(2, "0") + " s";
      if (seconds <= 300) {
        bar.classList.add("expiring");
        left.textContent += " — session expiring: choose a purpose again to go on";
      }
      if (seconds === 0) {
        location.href = "/console?next=" + encodeURIComponent(location.pathname);
      }
    };
    tick();
    setInterval(tick, 1000);
  }

  // Live player ------------------------------------------------------------------------------
  const STATE_TEXT = {
    connecting: "connecting…", online: "", reconnecting: "reconnecting…", offline: "camera offline — retrying",
    stopped: "stopped", "session-ended": "video ended",
  };

  class LivePlayer {
    constructor(tile) {
      this.tile = tile;
      this.video = tile.querySelector("video");
      this.stateEl = tile.querySelector(".state");
      this.badges = tile.querySelector(".badges");
      this.cameraId = tile.dataset.cameraId;
      this.stream = tile.dataset.stream || "sub";
      this.backoff = 500;
      this.stopped = false;
      this.connect();
      setInterval(() => this.chaseLiveEdge(), 250);
    }

    setState(state, text) {
      this.stateEl.dataset.state = state;
      this.stateEl.textContent = text !== undefined ? text : (STATE_TEXT[state] || state);
      this.tile.dataset.state = state;
    }

    setMasked(masked) {
      this.badges.innerHTML = "";
      const b = document.createElement("span");
      b.className = "badge " + (masked ? "masked" : "");
      b.textContent = masked ? "masked" : "no zones";
      b.title = masked ? "Privacy zones are blacked out on the server (U4)" : "This camera has no privacy zone";
      this.badges.appendChild(b);
    }

    connect() {
      this.queue = [];
      this.sb = null;
      this.codec = null;
      this.ms = new MediaSource();
      this.video.src = URL.createObjectURL(this.ms);
      this.ms.addEventListener("sourceopen", () => this.open(), { once: true });
    }

    open() {
      const proto = location.protocol === "https:" ? "wss://" : "ws://";
      const ws = new WebSocket(proto + location.host + "/api/v1/live/" + this.cameraId + "?stream=" + this.stream);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onmessage = (ev) => {
        if (typeof ev.data === "string") this.onText(JSON.parse(ev.data));
        else this.onMedia(new Uint8Array(ev.data));
      };
      ws.onclose = (ev) => {
        if (this.stopped) return;
        if (ev.code >= 4400 && ev.code < 4500) {
          this.stopped = true;
          if (!this.refused) this.setState("error", ev.reason || "refused");
          return;
        }
        this.setState("reconnecting");
        setTimeout(() => this.connect(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 5000);
      };
    }

    onText(msg) {
      if (msg.error) {
        this.refused = true;
        this.setState("error", msg.error + (msg.clause ? " (" + msg.clause + ")" : ""));
        return;
      }
      if (msg.state) {
        const why = (msg.reason || "") + (msg.clause ? " (" + msg.clause + ")" : "");
        this.setState(msg.state, msg.state === "session-ended" ? "video ended: " + why : undefined);
        if (msg.state === "session-ended") {
          this.stopped = true;
          setTimeout(() => { location.href = "/console?next=" + encodeURIComponent(location.pathname); }, 2500);
        }
      }
      if ("masked" in msg) this.setMasked(msg.masked);
      if ("lift" in msg) PSCS.showLift(msg.lift);
    }

    onMedia(u8) {
      this.backoff = 500;
      if (PSCS.isInit(u8)) {
        const codec = PSCS.codecOf(u8);
        if (!this.sb) {
          this.sb = this.ms.addSourceBuffer('video/mp4; codecs="' + codec + '"');
          this.sb.mode = "segments";
          this.sb.addEventListener("updateend", () => this.pump());
        } else if (codec !== this.codec && this.sb.changeType) {
          this.queue.push({ changeType: 'video/mp4; codecs="' + codec + '"' });
        }
        this.codec = codec;
      }
      if (!this.sb) return;
      this.queue.push(u8);
      this.pump();
    }

    pump() {
      const sb = this.sb;
      if (!sb || sb.updating || !this.queue.length) return;
      const item = this.queue.shift();
      try {
        if (item.changeType) {
          sb.changeType(item.changeType);
          this.pump();
          return;
        }
        sb.appendBuffer(item);
      } catch (err) {
        // A full buffer or a decoder error: start over from the next keyframe.
        this.trim(true);
        return;
      }
      if (this.video.paused) this.video.play().catch(() => {});
      if (this.stateEl.dataset.state !== "online") this.setState("online");
      this.trim(false);
    }

    trim(force) {
      const v = this.video, sb = this.sb;
      if (!sb || sb.updating || !v.buffered.length) return;
      const start = v.buffered.start(0);
      if (force || v.currentTime - start > 20) {
        try { sb.remove(start, Math.max(start + 0.1, v.currentTime - 5)); } catch (e) { /* next time */ }
      }
    }

    chaseLiveEdge() {
      const v = this.video;
      if (!v.buffered.length) return;
      const end = v.buffered.end(v.buffered.length - 1);
      const lag = end - v.currentTime;
      if (lag > 1.0 || v.currentTime < v.buffered.start(v.buffered.length - 1)) {
        v.currentTime = Math.max(v.buffered.start(v.buffered.length - 1), end - 0.1);
      } else {
        v.playbackRate = lag > 0.3 ? 1.1 : 1.0;
      }
      if (v.paused && !this.stopped) v.play().catch(() => {});
    }
  }
  PSCS.LivePlayer = LivePlayer;

  // Mask lift banner ------------------------------------------------------------------------
  PSCS.showLift = function (lift) {
    const banner = document.getElementById("lift-banner");
    if (!banner) return;
    if (!lift || !lift.active) {
      banner.hidden = true;
      return;
    }
    banner.hidden = false;
    banner.textContent = "PRIVACY MASK LIFTED for you under warrant " + lift.warrant_reference +
      " (requested by " + lift.requested_by + ", approved by " + lift.decided_by + ") until " +
      lift.expires_at.slice(0, 19) + "Z. Everything you see is audited.";
  };

  const players = [...document.querySelectorAll(".cam-tile[data-camera-id]")]
    .filter((t) => t.querySelector("video[data-camera-id]"))
    .map((tile) => new LivePlayer(tile));
  PSCS.players = players;

  // Grid keyboard navigation ----------------------------------------------------------------
  const grid = document.getElementById("live-grid");
  if (grid) {
    const tiles = () => [...grid.querySelectorAll(".cam-tile")];
    const columns = () => getComputedStyle(grid).gridTemplateColumns.split(" ").length;
    grid.addEventListener("keydown", (ev) => {
      const list = tiles();
      const i = list.indexOf(document.activeElement);
      if (i < 0) return;
      const c = columns();
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: c, ArrowUp: -c };
      if (ev.key in moves) {
        const j = Math.min(list.length - 1, Math.max(0, i + moves[ev.key]));
        list[j].focus();
        ev.preventDefault();
      } else if (ev.key === "Enter") {
        location.href = "/console/live/" + list[i].dataset.cameraId;
      } else if (ev.key === "p" || ev.key === "P") {
        location.href = "/console/playback/" + list[i].dataset.cameraId;
      }
    });
    grid.addEventListener("dblclick", (ev) => {
      const tile = ev.target.closest(".cam-tile");
      if (tile) location.href = "/console/live/" + tile.dataset.cameraId;
    });
  }

  // Purpose picker: show only the fields the chosen purpose needs --------------------------
  const picker = document.getElementById("purpose-form");
  if (picker) {
    const fields = { case: "case_number", incident: "incident_number", location: "designation_id" };
    const update = () => {
      const chosen = picker.querySelector("input[name=purpose]:checked");
      for (const [flag, id] of Object.entries(fields)) {
        const input = document.getElementById(id);
        const needed = chosen && chosen.dataset[flag] === "1";
        input.closest("label").classList.toggle("hidden", !needed);
        input.required = !!needed;
      }
    };
    picker.addEventListener("change", update);
    update();
  }
})();
