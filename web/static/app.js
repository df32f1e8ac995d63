// updraft's pages work without this script; it adds live refresh of the
// parts marked data-live, live log tails, and confirmation of destructive
// buttons. No framework, no build step.
"use strict";

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Live regions: every few seconds, fetch this page again and swap each
  // element marked data-live (by id) for its new version, unless the user
  // is typing in it or has a dialog open.
  function refreshLive() {
    const regions = document.querySelectorAll("[data-live][id]");
    if (regions.length === 0 || document.hidden) return;
    const busy = document.activeElement && /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName);
    if (busy || document.querySelector("details[open]")) return;
    fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        const doc = new DOMParser().parseFromString(html, "text/html");
        regions.forEach((el) => {
          const fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            const node = document.importNode(fresh, true), left = el.scrollLeft;
            el.replaceWith(node);
            node.scrollLeft = left; // a scrolled grid stays where it was
          }
        });
        startLogs();
      })
      .catch(() => {});
  }

  // Logs: read each try's log through the API, following the continuation
  // token; a running try's log keeps being tailed until the try ends.
  const tails = new Map();
  function startLogs() {
    document.querySelectorAll("pre.log[data-log]").forEach((pre) => {
      const url = pre.dataset.log;
      const state = tails.get(url);
      if (state) {
        if (state.pre !== pre) { // the region was replaced: keep the text
          pre.textContent = state.pre.textContent;
          state.pre = pre;
        }
        return;
      }
      const t = { pre: pre, token: "", started: false };
      tails.set(url, t);
      pre.textContent = "";
      readLog(url, t);
    });
  }

  function readLog(url, t) {
    const q = t.token ? "?token=" + encodeURIComponent(t.token) : "";
    fetch(url + q, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((body) => {
        const atBottom = t.pre.scrollTop + t.pre.clientHeight >= t.pre.scrollHeight - 4;
        if (body.content) t.pre.appendChild(document.createTextNode(body.content));
        if (atBottom) t.pre.scrollTop = t.pre.scrollHeight;
        t.token = body.continuation_token || t.token;
        if (!t.started && !body.content) t.pre.textContent = t.pre.textContent || "(empty so far)";
        t.started = true;
        const live = t.pre.dataset.liveLog === "true";
        if (body.content) setTimeout(() => readLog(url, t), 50); // more may be waiting
        else if (live) setTimeout(() => readLog(url, t), 1000);
      })
      .catch(() => { t.pre.textContent += "\n(log unavailable)"; });
  }

  // Buttons that change many things ask first.
  document.addEventListener("submit", (ev) => {
    const b = ev.submitter;
    if (!b) return;
    const ask = { "run-clear": "Clear every task of this run?", "run-mark-failed": "Mark this run failed (running tasks are killed)?",
      "run-mark-success": "Mark this run success?" }[b.id] || b.dataset.confirm;
    if (ask && !window.confirm(ask)) ev.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", () => {
    // The grid opens on its newest runs (the right end).
    const grid = document.getElementById("grid-wrap");
    if (grid) grid.scrollLeft = grid.scrollWidth;
    startLogs();
    setInterval(refreshLive, 3000);
  });
  window.updraft = { csrf: csrf, refresh: refreshLive };
})();
