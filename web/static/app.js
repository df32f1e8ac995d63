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
            localTimes(node);
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

  // Times: the pages write them in UTC ("2024-01-02 03:04[:05] UTC");
  // with "local" chosen (kept in this browser), each is shown in the
  // browser's time zone instead, the UTC one in its tooltip.
  const utcTime = /(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))? UTC\b/g;
  function localTimes(root) {
    if (localStorage.getItem("updraft.tz") !== "local") return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) {
      if (utcTime.test(walker.currentNode.nodeValue)) nodes.push(walker.currentNode);
      utcTime.lastIndex = 0;
    }
    nodes.forEach((n) => {
      if (n.parentElement && n.parentElement.closest("pre, textarea, script")) return;
      const text = n.nodeValue;
      n.nodeValue = text.replace(utcTime, (all, y, mo, d, h, mi, se) => {
        const t = new Date(Date.UTC(+y, +mo - 1, +d, +h, +mi, +(se || 0)));
        const opts = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short" };
        if (se) opts.second = "2-digit";
        return t.toLocaleString("sv-SE", opts);
      });
      if (n.parentElement && !n.parentElement.title) n.parentElement.title = text.trim();
    });
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
    const tz = document.getElementById("tz-choice");
    if (tz) {
      tz.value = localStorage.getItem("updraft.tz") === "local" ? "local" : "utc";
      tz.addEventListener("change", () => { localStorage.setItem("updraft.tz", tz.value); location.reload(); });
    }
    localTimes(document.body);
    // The grid opens on its newest runs (the right end).
    const grid = document.getElementById("grid-wrap");
    if (grid) grid.scrollLeft = grid.scrollWidth;
    startLogs();
    setInterval(refreshLive, 3000);
  });
  window.updraft = { csrf: csrf, refresh: refreshLive };
})();
