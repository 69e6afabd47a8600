// Keeping the MSE player at the live edge (static/live-edge.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import { DEFAULT_STEERING, LiveEdgeSteering } from "../../static/live-edge.js";

const arrivals = (steering, slacks) => slacks.map((s) => steering.onArrival(s));

/** A steering past its start: the playhead has once been at the live edge. */
function started(options) {
  const steering = new LiveEdgeSteering(options);
  steering.onArrival(DEFAULT_STEERING.targetS);
  return steering;
}

test("a new stream jumps to the live edge at once, until the playhead gets there", () => {
  const steering = new LiveEdgeSteering();
  const { targetS } = DEFAULT_STEERING;
  // Before the first media there is no slack; then a backlog from the newest IDR arrives.
  assert.deepEqual(steering.onArrival(null, false), { rate: 1, jumpTo: null });
  assert.deepEqual(steering.onArrival(0.3, false), { rate: 1, jumpTo: targetS }, "even paused");
  assert.deepEqual(steering.onArrival(0.1), { rate: 1, jumpTo: targetS });
  assert.deepEqual(steering.onArrival(0.07), { rate: null, jumpTo: null }, "at the edge: started");
  // From now on the same slack is judged over the window, not jumped.
  assert.deepEqual(steering.onArrival(0.3), { rate: null, jumpTo: null });
});

test("at the target the rate is normal and nothing jumps", () => {
  const steering = started();
  for (const decision of arrivals(steering, new Array(40).fill(DEFAULT_STEERING.targetS))) {
    assert.deepEqual(decision, { rate: 1, jumpTo: null });
  }
});

test("a slack above the catch-up level for a whole window plays faster until back at the target", () => {
  const steering = started();
  const { window, catchUpRate, targetS } = DEFAULT_STEERING;
  const decisions = arrivals(steering, new Array(window).fill(0.12));
  assert.ok(decisions.slice(0, window - 1).every((d) => d.rate === null && d.jumpTo === null));
  assert.deepEqual(decisions[window - 1], { rate: catchUpRate, jumpTo: null });
  // Between the target and the catch-up level: keep the current rate.
  assert.deepEqual(steering.onArrival(0.06), { rate: null, jumpTo: null });
  assert.deepEqual(steering.onArrival(targetS), { rate: 1, jumpTo: null });
});

test("one short slack in the window means jitter, not latency: no catch-up while it is there", () => {
  const steering = started();
  const { window, catchUpRate } = DEFAULT_STEERING;
  const slacks = new Array(window * 2).fill(0.15);
  slacks[3] = 0.05;
  const fast = arrivals(steering, slacks)
    .map((d, i) => [i, d.rate])
    .filter(([, rate]) => rate === catchUpRate)
    .map(([i]) => i);
  // The first arrival whose window no longer holds the short slack.
  assert.equal(fast[0], 3 + window);
});

test("far behind: jump to just before the buffered end, then judge afresh", () => {
  const steering = started();
  arrivals(steering, new Array(10).fill(0.2));
  assert.deepEqual(steering.onArrival(0.9), { rate: 1, jumpTo: DEFAULT_STEERING.targetS });
  assert.equal(steering.slacks.length, 0);
});

test("waiting or paused counts as no slack: normal rate, window cleared", () => {
  const steering = started({ window: 3 });
  arrivals(steering, [0.2]);
  assert.deepEqual(steering.onArrival(0.2, false), { rate: 1, jumpTo: null });
  arrivals(steering, [0.2, 0.2]);
  assert.deepEqual(steering.onArrival(null), { rate: 1, jumpTo: null });
  assert.deepEqual(arrivals(steering, [0.2, 0.2]).map((d) => d.rate), [null, null]);
  assert.equal(steering.onArrival(0.2).rate, DEFAULT_STEERING.catchUpRate);
});
