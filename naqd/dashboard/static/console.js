// naqd console: local times, actions through /api/v1 (CSRF header), live regions fed by
// server-sent events, the argument search. No framework, no build step, no CDN. Every
// value from a job reaches the page as text: rows are built with textContent, and live
// regions are HTML the server rendered with autoescaping.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";
const REFRESH_GAP_MS = 1000; // a busy cluster refreshes a region at most once a second
const MAX_SEARCH_ROWS = 500;

function localTime(ms) {
  return new Date(ms).toLocaleString(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function formatTimes(root) {
  for (const t of root.querySelectorAll("time[data-ts]")) {
    t.textContent = localTime(Number(t.dataset.ts));
  }
}

function flash(text, bad) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = "flash" + (bad ? " bad" : "");
  box.hidden = false;
}

async function call(method, url, body) {
  const headers = {"X-CSRF-Token": CSRF, "Accept": "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
  if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}

// -- live regions --------------------------------------------------------------------

const regions = [...document.querySelectorAll("[data-live]")];
const pending = new Map(); // region -> timer, while a refresh runs or cools down
const dirty = new Set(); // regions that changed meanwhile: refreshed once more after

function refresh(region) {
  if (region.dataset.static) return;
  if (pending.has(region)) { dirty.add(region); return; }
  pending.set(region, setTimeout(async () => {
    try {
      const r = await fetch(region.dataset.live, {credentials: "same-origin"});
      if (r.ok) {
        region.innerHTML = await r.text(); // rendered (and escaped) by the server
        formatTimes(region);
      } else if (r.status === 503) {
        setBanner(false);
      }
    } catch (e) { /* the console itself is away: the live dot says so */ }
    setTimeout(() => {
      pending.delete(region);
      if (dirty.delete(region)) refresh(region); // nothing that happened is left unshown
    }, REFRESH_GAP_MS);
  }, 250));
}

function refreshAll() { regions.forEach(refresh); }

function setBanner(up) {
  const banner = document.getElementById("banner");
  if (banner) banner.hidden = up;
}

function connectLive() {
  if (!window.EventSource || document.body.dataset.page === "login") return;
  const dot = document.getElementById("live");
  const es = new EventSource("/api/v1/events");
  es.onopen = () => { if (dot) dot.className = "live on"; };
  es.onerror = () => { if (dot) dot.className = "live off"; };
  const onEvent = (type) => (msg) => {
    let ev = {};
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    if (type === "nats" || type === "hello") {
      const up = type === "nats" ? ev.up : ev.nats;
      setBanner(up);
      // The outage page has nothing to refresh in place: load it again once NATS is back.
      if (type === "nats" && up && document.body.dataset.page === "outage") location.reload();
      // On (re)connecting, render once more: whatever changed between the page's render
      // and its stream opening (or while the stream was away) would otherwise be missed.
      if (up) refreshAll();
      return;
    }
    for (const region of regions) {
      const kinds = (region.dataset.on || "").split(",");
      if (!kinds.includes(type)) continue;
      if (region.dataset.key && ev.key && ev.key !== region.dataset.key && type !== "resync") continue;
      refresh(region);
    }
  };
  for (const type of ["hello", "nats", "job", "worker", "dead_letter", "queue", "schedule", "audit", "resync"]) {
    es.addEventListener(type, onEvent(type));
  }
  return es;
}

// A page that is left closes its streams at once: a browser allows six connections to
// a host, and a page kept in the back/forward cache would otherwise hold its stream.
let liveStream = null;
window.addEventListener("pagehide", () => {
  if (liveStream) { liveStream.close(); liveStream = null; }
  if (window.__naqdSearch) window.__naqdSearch.close();
});
window.addEventListener("pageshow", (e) => {
  if (e.persisted && !liveStream) { liveStream = connectLive(); refreshAll(); }
});

// -- actions -------------------------------------------------------------------------

document.addEventListener("click", async (e) => {
  const btn = e.target.closest("button.act");
  if (btn) {
    e.preventDefault();
    if (btn.dataset.confirm && !window.confirm(btn.dataset.confirm)) return;
    btn.disabled = true;
    try {
      const res = await call(btn.dataset.method, btn.dataset.url);
      flash(res.message || (res.action + " " + res.target + ": done"), false);
      refreshAll();
    } catch (err) {
      flash(err.message, true);
    } finally {
      btn.disabled = false;
    }
    return;
  }
  const bulk = e.target.closest("button.bulk");
  if (bulk) {
    e.preventDefault();
    const form = document.getElementById("dlq-filters");
    const filter = {};
    for (const name of ["queue", "task", "error_type"]) {
      const v = form.elements[name].value.trim();
      if (v) filter[name] = v;
    }
    if (!Object.keys(filter).length) filter.all = true;
    try {
      const dry = await call("POST", bulk.dataset.url, {...filter, dry_run: true});
      if (!dry.count) { flash(dry.message || "no dead letters match: nothing done", false); return; }
      const what = Object.entries(filter).map(([k, v]) => k + "=" + v).join(", ");
      if (!window.confirm(`${bulk.dataset.verb} ${dry.count} dead letter(s) matching ${what}?`)) return;
      const res = await call("POST", bulk.dataset.url, filter);
      flash(res.message || `${bulk.dataset.verb.toLowerCase()}d ${res.count}`, false);
      refreshAll();
    } catch (err) {
      flash(err.message, true);
    }
  }
});

// -- argument search -----------------------------------------------------------------

function setupSearch() {
  const form = document.getElementById("arg-search");
  if (!form) return;
  const stopBtn = document.getElementById("search-stop");
  const progress = document.getElementById("search-progress");
  const status = document.getElementById("search-status");
  const table = document.getElementById("search-results");
  const body = table.querySelector("tbody");
  let es = null;
  const finish = (text) => {
    if (es) { es.close(); es = null; }
    stopBtn.hidden = true;
    progress.hidden = true;
    status.textContent = text;
  };
  const cell = (tr, text, href, cls) => {
    const td = tr.insertCell();
    if (cls) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      td.append(span);
    } else if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.append(a);
    } else {
      td.textContent = text == null ? "" : String(text);
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    finish("");
    const q = form.elements.args.value.trim();
    if (!q) return;
    body.replaceChildren();
    table.hidden = false;
    stopBtn.hidden = false;
    progress.hidden = false;
    progress.removeAttribute("value");
    status.textContent = "searching…";
    const queue = document.querySelector('#job-filters select[name="queue"]')?.value || "";
    const url = "/api/v1/search?args=" + encodeURIComponent(q) + (queue ? "&queue=" + encodeURIComponent(queue) : "");
    es = new EventSource(url);
    window.__naqdSearch = es;
    const show = (ev) => {
      if (ev.total) { progress.max = ev.total; progress.value = ev.scanned; }
      status.textContent = `scanned ${ev.scanned}${ev.total ? " of " + ev.total : ""} · ${ev.hits} found`;
    };
    es.addEventListener("progress", (m) => show(JSON.parse(m.data)));
    es.addEventListener("hit", (m) => {
      const ev = JSON.parse(m.data);
      show(ev);
      if (ev.job && body.rows.length < MAX_SEARCH_ROWS) {
        const tr = body.insertRow();
        tr.dataset.job = ev.job.id;
        cell(tr, ev.job.id, "/jobs/" + encodeURIComponent(ev.job.id));
        cell(tr, ev.job.state, null, "state s-" + ev.job.state);
        cell(tr, ev.job.queue, "/queues/" + encodeURIComponent(ev.job.queue));
        cell(tr, ev.job.task);
        cell(tr, ev.job.at ? localTime(ev.job.at * 1000) : "-");
      }
    });
    es.addEventListener("done", (m) => {
      const ev = JSON.parse(m.data);
      finish(`done: scanned ${ev.scanned}, ${ev.hits} found` + (ev.stopped ? " (stopped)" : ""));
    });
    es.onerror = () => { if (es) finish(status.textContent + " (ended)"); };
  });
  stopBtn.addEventListener("click", () => finish(status.textContent + " · stopped"));
  if (form.elements.args.value) form.requestSubmit();
}

formatTimes(document);
setupSearch();
liveStream = connectLive();
