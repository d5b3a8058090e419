// naqd's wire protocol from Node: each scenario drives a real naqd daemon through
// naqd.mjs (the producer code docs/protocol.md shows) and checks what comes back.
// Run by tests/conformance/test_node.py: NAQD_URL names the server; queue `default`
// runs tests.tasks (retries 0); a scheduler is running. Prints `ok <name>` per scenario.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { cancel, enqueue, envelope, naqd, waitFor } from "./naqd.mjs";

const q = await naqd(process.env.NAQD_URL ?? "nats://127.0.0.1:4222");
const run = randomUUID().slice(0, 8);
const newId = (name) => `node-${run}-${name}`;
const scenarios = {};

scenarios["enqueue and wait via the done notice"] = async () => {
  const id = newId("add");
  const ack = await enqueue(q, envelope(id, "tests.tasks:add", "default", [1, 2]));
  assert.equal(ack.duplicate, false);
  const rec = await waitFor(q, id);
  assert.equal(rec.status, "succeeded");
  assert.equal(rec.result, 3);
  assert.equal(rec.attempts, 1);
  // The same id again within the duplicate window: stored once, run once.
  const again = await enqueue(q, envelope(id, "tests.tasks:add", "default", [1, 2]));
  assert.equal(again.duplicate, true);
};

scenarios["failure: failed record and dead-letter entry"] = async () => {
  const id = newId("fail");
  await enqueue(q, envelope(id, "tests.tasks:fail", "default", ["nope"]));
  const rec = await waitFor(q, id);
  assert.equal(rec.status, "failed");
  assert.equal(rec.error.type, "ValueError");
  assert.equal(rec.error.message, "nope");
  const dead = await q.jsm.streams.getMessage("NAQD_DLQ", {
    last_by_subj: `naqd.dlq.default.${id}`,
  });
  const entry = dead.json();
  assert.equal(entry.v, 1);
  assert.equal(entry.reason, "failed");
  assert.equal(entry.payload_encoding, "text");
  assert.equal(JSON.parse(entry.payload).id, id);
};

scenarios["per-job retry_on in a short envelope"] = async () => {
  // Only the fields a producer needs: options are read however few there are.
  const notRetried = newId("retry-on-no");
  const short = (id, on) => ({
    id, task: "tests.tasks:fail", queue: "default", args: ["x"],
    retries: 2, retry_on: on, backoff: [0],
  });
  await enqueue(q, short(notRetried, ["KeyError"])); // fail raises ValueError
  const once = await waitFor(q, notRetried);
  assert.equal(once.status, "failed");
  assert.equal(once.attempts, 1);
  const retried = newId("retry-on-yes");
  await enqueue(q, short(retried, ["ValueError"]));
  const thrice = await waitFor(q, retried);
  assert.equal(thrice.status, "failed");
  assert.equal(thrice.attempts, 3);
  assert.equal(thrice.errors.length, 3);
};

scenarios["null means absent"] = async () => {
  const id = newId("nulls");
  const job = { v: null, id, task: "tests.tasks:echo_kwargs", queue: "default",
    args: null, kwargs: null, retries: null, backoff: null, result_ttl: null };
  await enqueue(q, job);
  const rec = await waitFor(q, id);
  assert.equal(rec.status, "succeeded");
  assert.deepEqual(rec.result, {});
};

scenarios["trace context continues into the worker span"] = async () => {
  // A trace started here (no OpenTelemetry library needed: the W3C header is the protocol).
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  const id = newId("traced");
  const trace = {
    traceparent: `00-${traceId}-${spanId}-01`,
    tracestate: "node=conformance",
    baggage: "origin=node",
  };
  await enqueue(q, envelope(id, "tests.tasks:trace_ids", "default", ["node traced line"]), {
    trace,
  });
  const rec = await waitFor(q, id);
  assert.equal(rec.status, "succeeded");
  // The span current inside the task is the worker's, in our trace (and in its log ids).
  assert.equal(rec.result.trace_id, traceId);
  assert.notEqual(rec.result.span_id, spanId);
  assert.deepEqual(rec.result.log, [traceId, rec.result.span_id]);
  console.log(`trace ${id} ${traceId} ${spanId} ${rec.result.span_id}`);
};

scenarios["delayed job (Nats-Schedule @at, milliseconds)"] = async () => {
  const id = newId("delayed");
  const at = new Date(Date.now() + 1500);
  await enqueue(q, envelope(id, "tests.tasks:add", "default", [2, 3]), { at });
  const rec = await waitFor(q, id);
  assert.equal(rec.result, 5);
  assert.ok(rec.started_at * 1000 >= at.getTime() - 5, `ran early: ${rec.started_at}`);
  // A time in the past fires at once.
  const past = newId("past");
  await enqueue(q, envelope(past, "tests.tasks:add", "default", [1, 1]), {
    at: new Date(Date.now() - 60000),
  });
  assert.equal((await waitFor(q, past)).result, 2);
};

scenarios["dependent job"] = async () => {
  const parent = newId("parent");
  const child = newId("child");
  await enqueue(q, envelope(child, "tests.tasks:add", "default", [10, 1]), {
    dependsOn: [parent],
  });
  await enqueue(q, envelope(parent, "tests.tasks:add", "default", [1, 1]));
  const p = await waitFor(q, parent);
  const c = await waitFor(q, child, 30000);
  assert.equal(c.result, 11);
  assert.ok(c.started_at >= p.finished_at, "the child ran before its parent finished");
};

scenarios["cancel a delayed job"] = async () => {
  const id = newId("cancel");
  const at = new Date(Date.now() + 60000);
  await enqueue(q, envelope(id, "tests.tasks:add", "default", [1, 2]), { at });
  const notice = q.nc.subscribe(`naqd.done.${id}`, { max: 1 });
  assert.equal(await cancel(q, "default", id), true);
  for await (const m of notice) assert.equal(m.json().status, "cancelled");
  const held = await q.jsm.streams.info("NAQD_JOBS", { subjects_filter: `naqd.sched.>` });
  assert.equal(held.state.subjects?.[`naqd.sched.default.${id}`], undefined);
  assert.equal((await waitFor(q, id)).status, "cancelled");
  assert.equal(await cancel(q, "default", id), false); // it has a record already
};

scenarios["malformed and refused jobs"] = async () => {
  const expectRefused = async (id, reason, task) => {
    const rec = await waitFor(q, id);
    assert.equal(rec.status, "failed");
    assert.equal(rec.error.type, "JobRejected");
    assert.ok(rec.error.message.startsWith(reason), rec.error.message);
    assert.equal(rec.task, task);
    const dead = await q.jsm.streams.getMessage("NAQD_DLQ", {
      last_by_subj: `naqd.dlq.default.${id}`,
    });
    assert.equal(dead.json().reason, "unreadable");
  };
  // Not JSON: filed under its Nats-Msg-Id.
  const garbage = newId("garbage");
  await q.js.publish("naqd.jobs.default", "{not json", { msgID: garbage });
  await expectRefused(garbage, "malformed", "");
  // A readable envelope the workers refuse, with no Nats-Msg-Id: filed under its id.
  const unlisted = newId("unlisted");
  const job = envelope(unlisted, "tests.unlisted_tasks:boom", "default");
  await q.js.publish("naqd.jobs.default", JSON.stringify(job));
  await expectRefused(unlisted, "task not allowed", "tests.unlisted_tasks:boom");
  // Nats-Msg-Id must equal the envelope id.
  const mismatch = newId("mismatch");
  const body = JSON.stringify(envelope(mismatch, "tests.tasks:add", "default", [1, 2]));
  await q.js.publish("naqd.jobs.default", body, { msgID: `${mismatch}-other` });
  await expectRefused(mismatch, "id mismatch", "tests.tasks:add");
  // The version is the number 1.
  const version = newId("version");
  await enqueue(q, { ...envelope(version, "tests.tasks:add", "default"), v: "1" });
  await expectRefused(version, "malformed", "tests.tasks:add");
};

let failed = 0;
const only = process.argv.slice(2);
for (const [name, scenario] of Object.entries(scenarios)) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  try {
    await scenario();
    console.log(`ok ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAILED ${name}: ${err.stack ?? err}`);
  }
}
await q.nc.drain();
process.exit(failed ? 1 : 0);
