"""The status page: one self-contained HTML document (no external assets, no build step)
that polls /api/status. Every value is inserted as text, never as HTML."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>naqd status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  h2 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
  table { border-collapse: collapse; min-width: 40%; }
  th, td { text-align: left; padding: .2rem .8rem .2rem 0; border-bottom: 1px solid #ddd; }
  th { font-weight: 600; color: #555; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .badge { padding: .1rem .5rem; border-radius: .3rem; color: #fff; font-weight: 600; }
  .ok { background: #2a7d2e; } .bad { background: #b3261e; }
  .muted { color: #777; }
</style>
</head>
<body>
<h1>naqd <span id="health" class="badge">…</span></h1>
<div class="muted">updated <span id="updated">never</span>;
  cluster data <span id="cluster-age">not collected yet</span></div>
<h2>Processes on this host</h2><div id="children"></div>
<h2>Queues</h2><div id="queues"></div>
<h2>Workers (all hosts)</h2><div id="workers"></div>
<h2>Scheduler leader</h2><div id="leader"></div>
<h2>Schedules</h2><div id="schedules"></div>
<h2>Recent dead letters</h2><div id="dead"></div>
<script>
"use strict";
const REFRESH_MS = 3000;
function when(ts) {
  if (!ts) return "-";
  return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\\.\\d+Z$/, " UTC");
}
function table(id, header, rows, empty) {
  const box = document.getElementById(id);
  box.replaceChildren();
  if (!rows.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = empty;
    box.append(p);
    return;
  }
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const h of header) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  for (const row of rows) {
    const tr = t.insertRow();
    for (const v of row) {
      const td = tr.insertCell();
      td.textContent = v === null || v === undefined ? "-" : String(v);
      if (typeof v === "number") td.className = "num";
    }
  }
  box.append(t);
}
function render(s) {
  const badge = document.getElementById("health");
  badge.textContent = s.healthy ? "healthy" : "unhealthy";
  badge.className = "badge " + (s.healthy ? "ok" : "bad");
  document.getElementById("updated").textContent = when(s.now);
  table("children", ["child", "pid", "state", "heartbeat age (s)"],
    s.children.map(c => [c.child, c.pid, c.state, c.heartbeat_age]), "no children");
  const c = s.cluster;
  document.getElementById("cluster-age").textContent =
    c ? s.cluster_age + " s old" : "not collected yet";
  if (!c) return;
  table("queues", ["queue", "pending", "in flight", "dead", "processes", "running", "state"],
    c.queues.map(q => [q.queue, q.pending, q.in_flight, q.dead, q.processes,
                       q.running + "/" + q.concurrency, q.paused ? "paused" : "active"]),
    "no queues");
  table("workers", ["host", "pid", "role", "queues", "running", "done", "failed", "last beat"],
    c.workers.map(w => [w.host, w.pid, w.role, (w.queues || []).join(","),
                        (w.running || []).length, w.done, w.failed, when(w.last_heartbeat)]),
    "no naqd processes are heartbeating");
  const lead = c.leader;
  table("leader", ["host", "pid", "since"],
    lead ? [[lead.host, lead.pid, when(lead.since)]] : [], "no scheduler leads right now");
  table("schedules", ["schedule", "next fire", "trigger", "timezone", "task"],
    c.schedules.map(x => [x.schedule, x.next ? when(x.next) : "-", x.trigger, x.timezone,
                          x.task]), "no schedules configured");
  const dl = c.dead_letters;
  table("dead", ["seq", "queue", "job", "task", "error", "time"],
    dl.recent.map(d => [d.seq, d.queue, d.id, d.task, d.error, d.time]),
    dl.available ? "no dead letters" : "no dead-letter stream");
}
async function refresh() {
  try {
    const r = await fetch("/api/status", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    const badge = document.getElementById("health");
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
"""
