// Keeping an MSE player at the live edge: decides, each time new media arrives, whether the
// playhead plays at normal speed, a little faster, or jumps forward. Pure (slack values in,
// decisions out), so it is unit-tested in tests/js/ without a browser.
//
// The slack is how much media was still buffered ahead of the playhead when the next piece
// arrived: what protects playback from a stall. Anything beyond a small margin is pure latency.

/** Defaults for framecast's /live.mp4, which sends every frame as it is encoded. */
export const DEFAULT_STEERING = {
  // Margin against network and timer jitter that the playhead keeps.
  targetS: 0.04,
  // Above this (the smallest slack of the last `window` arrivals, so one late piece does not
  // count), play faster until back at the target.
  catchUpAboveS: 0.08,
  // Muted video, so a faster rate has no pitch to betray it; 1.1x takes back 0.1 s in 1 s.
  catchUpRate: 1.1,
  // Above this, catching up by rate would take seconds: jump instead (the browser decodes from
  // the last IDR, a short hitch once).
  jumpAboveS: 0.5,
  // Arrivals the slack is judged over: half a second of 30 fps frames.
  window: 15,
  // Until the playhead first comes this close to the buffered end, any more slack is jumped
  // over at once: a new stream starts at the newest IDR with up to a segment of frames, and
  // before the first frames are shown a jump costs nothing.
  startAboveS: 0.08,
};

export class LiveEdgeSteering {
  constructor(options = {}) {
    this.options = { ...DEFAULT_STEERING, ...options };
    this.slacks = [];
    this.starting = true;
  }

  /**
   * New media arrives and the playhead had `slackS` seconds buffered ahead of it (null when it
   * is outside what is buffered); `playing` is false while it waits or is paused, which counts
   * as no slack, so no catching up. Returns { rate, jumpTo }: rate is the playbackRate to use,
   * or null to keep the current one (a catch-up runs until the slack is back at the target);
   * jumpTo, when not null, is how far before the buffered end to move the playhead.
   */
  onArrival(slackS, playing = true) {
    const o = this.options;
    if (slackS !== null && this.starting) {
      if (slackS <= o.startAboveS) {
        this.starting = false;
      } else {
        return { rate: 1, jumpTo: o.targetS };
      }
    }
    if (slackS === null || !playing) {
      this.slacks = [];
      return { rate: 1, jumpTo: null };
    }
    this.slacks.push(slackS);
    if (this.slacks.length > o.window) this.slacks.shift();
    if (slackS > o.jumpAboveS) {
      this.slacks = [];
      return { rate: 1, jumpTo: o.targetS };
    }
    if (slackS <= o.targetS) return { rate: 1, jumpTo: null };
    if (this.slacks.length === o.window && Math.min(...this.slacks) > o.catchUpAboveS) {
      return { rate: o.catchUpRate, jumpTo: null };
    }
    return { rate: null, jumpTo: null };
  }
}
