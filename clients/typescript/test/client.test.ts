/**
 * The client against a live `arrive serve` (started by tests/clients/test_typescript.py,
 * which passes its URL in ARRIVE_URL): one order, a batch, a 422 naming the field, health.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { ArriveClient, ArriveError, type EtaRequest } from "../src/index.js";

const url = process.env.ARRIVE_URL;
if (!url) throw new Error("ARRIVE_URL: set it to a running service's base URL");
const client = new ArriveClient(url, { timeoutMs: 10_000 });

const order: EtaRequest = {
  order_id: "o-1042",
  created_at: "2025-03-03T12:00:00Z",
  pickup_lat: 52.52,
  pickup_lon: 13.405,
  drop_lat: 52.49,
  drop_lon: 13.43,
  items: 3,
};

test("predict answers one order with a P50 below its P90", async () => {
  const answer = await client.predict({ ...order, request_id: "ts-one" });
  assert.equal(answer.order_id, "o-1042");
  assert.equal(answer.request_id, "ts-one");
  assert.ok(answer.p50_s > 0 && answer.p50_s <= answer.p90_s, JSON.stringify(answer));
});

test("predictBatch answers every order, in order", async () => {
  const orders = ["a", "b", "c"].map((id) => ({ ...order, order_id: id }));
  const answers = await client.predictBatch(orders);
  assert.deepEqual(
    answers.map((a) => a.order_id),
    ["a", "b", "c"],
  );
});

test("a refused order throws ArriveError with the status and the field named", async () => {
  const bad = { ...order, items: -1 };
  await assert.rejects(client.predict(bad), (error: unknown) => {
    assert.ok(error instanceof ArriveError);
    assert.equal(error.status, 422);
    assert.equal(error.body?.error, "validation_error");
    assert.equal(error.field, "items");
    return true;
  });
});

test("a batch above nothing is refused naming orders", async () => {
  await assert.rejects(client.predictBatch([]), (error: unknown) => {
    assert.ok(error instanceof ArriveError);
    assert.equal(error.status, 422);
    assert.equal(error.field, "orders");
    return true;
  });
});

test("health and readiness describe the replica", async () => {
  const health = await client.health();
  assert.ok(["ok", "degraded", "down"].includes(String(health.status)), JSON.stringify(health));
  const ready = await client.ready();
  assert.equal(typeof ready.ready, "boolean");
});

test("an unreachable service rejects (no silent answer)", async () => {
  const down = new ArriveClient("http://127.0.0.1:9", { timeoutMs: 2000 });
  await assert.rejects(down.health());
});
