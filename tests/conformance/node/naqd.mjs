// A naqd producer in Node, written from docs/protocol.md: enqueue (now, delayed or
// dependent), wait for the final record, cancel. docs/protocol.md shows this file.
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export async function naqd(servers) {
  const nc = await connect({ servers });
  const js = jetstream(nc);
  const kvm = new Kvm(js);
  // open, never create: the workers made the buckets, with their own settings.
  const results = await kvm.open("naqd_results");
  const cancels = await kvm.open("naqd_cancels");
  return { nc, js, jsm: await jetstreamManager(nc), results, cancels };
}

export function envelope(id, task, queue, args = [], options = {}) {
  const enqueuedAt = Date.now() / 1000;
  return { v: 1, id, task, queue, args, kwargs: {}, enqueued_at: enqueuedAt, ...options };
}

// Publish a job; a retry of a failed publish reuses the id (the stream drops duplicates).
// `trace`: W3C headers ({ traceparent, tracestate, baggage }) the worker's span continues.
export async function enqueue(q, job, { at, dependsOn, level, trace } = {}) {
  const body = JSON.stringify(job);
  const ready = `naqd.jobs.${job.queue}` + (level ? `.${level}` : "");
  if (at) {
    // Delayed: a holder the server fires into `ready` at `at` (a Date; ms precision).
    return q.js.publish(`naqd.sched.${job.queue}.${job.id}`, body, {
      msgID: `hold.${job.id}`,
      schedule: { specification: at, target: ready },
    });
  }
  if (dependsOn) {
    // Dependent: a holder the naqd scheduler releases once every parent succeeded.
    const h = headers();
    h.set("Naqd-Depends-On", dependsOn.join(","));
    withTrace(h, trace);
    return q.js.publish(`naqd.deps.${job.queue}.${job.id}`, body, {
      msgID: `hold.${job.id}`,
      headers: h,
    });
  }
  const h = trace ? withTrace(headers(), trace) : undefined;
  return q.js.publish(ready, body, { msgID: job.id, headers: h });
}

// The trace context headers, lower case as W3C names them (docs/protocol.md#trace-context).
function withTrace(h, trace = {}) {
  for (const name of ["traceparent", "tracestate", "baggage"]) {
    if (trace[name]) h.set(name, trace[name]);
  }
  return h;
}

// The final record of a job: subscribe to its done notice first, then read the key, so
// a record stored in between is never missed; re-read every 2 s (notices can be lost).
export async function waitFor(q, id, timeoutMs = 20000) {
  const sub = q.nc.subscribe(`naqd.done.${id}`, { max: 1 });
  const deadline = Date.now() + timeoutMs;
  try {
    const notice = (async () => {
      for await (const m of sub) return m.json();
    })();
    while (Date.now() < deadline) {
      const entry = await q.results.get(id);
      const stored = entry && entry.operation === "PUT" ? entry.json() : null;
      if (stored && FINAL.has(stored.status)) return stored;
      const wait = new Promise((ok) => setTimeout(ok, Math.min(2000, deadline - Date.now())));
      const rec = await Promise.race([notice, wait]);
      if (rec && FINAL.has(rec.status)) return rec;
    }
    throw new Error(`job ${id}: no final record within ${timeoutMs} ms`);
  } finally {
    sub.unsubscribe();
  }
}

// Cancel: drop a delayed or dependent holder, tell the workers, and record `cancelled`
// unless a worker already wrote a record (kv.create fails then; that worker records it).
export async function cancel(q, queue, id) {
  for (const kind of ["sched", "deps"]) {
    await q.jsm.streams.purge("NAQD_JOBS", { filter: `naqd.${kind}.${queue}.${id}` });
  }
  await q.cancels.put(id, JSON.stringify({ at: Date.now() / 1000 }));
  const now = Date.now() / 1000;
  const rec = {
    id, status: "cancelled", result: null, attempts: 0, task: "", queue,
    enqueued_at: 0, started_at: null, finished_at: now, worker: "node", encoding: "json",
  };
  try {
    await q.results.create(id, JSON.stringify(rec));
  } catch {
    return false; // a worker holds it: it stops the job and writes the record itself
  }
  q.nc.publish(`naqd.done.${id}`, JSON.stringify(rec));
  return true;
}
