"""The page's latencies in a real browser (Chromium via Playwright): prints one JSON line.

- page load -> first idle face frame drawn (from the navigation start), cold and warm;
- typed message -> first audio in the page: when the first audio message arrives and when it is heard,
  against the turn's own `first_sentence_s` (the LLM's first sentence): the difference is the server's
  overhead (voice, face, queueing, the socket);
- A/V sync as the page measures it: each shown frame's pts against the heard audio position.

.venv/bin/python benchmarks/server_latency.py [--loads 5] [--turns 3]
"""

from __future__ import annotations

import argparse
import json
import statistics

from server_common import running_server

ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    loads: list[float] = []
    turns: list[dict[str, float]] = []
    sync: dict[str, float] = {}
    with running_server("ok", max_sessions=args.loads + 2) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(args.loads):
            context = browser.new_context()
            page = context.new_page()
            page.goto(server.url + "/")
            page.wait_for_function("window.digihuman?.player?.stats.firstIdleFrameMs != null", timeout=20_000)
            loads.append(page.evaluate("window.digihuman.player.stats.firstIdleFrameMs"))
            context.close()
        page = browser.new_context().new_page()
        page.goto(server.url + "/")
        page.wait_for_function("window.digihuman?.player?.stats.firstIdleFrameMs != null", timeout=20_000)
        for index in range(args.turns):
            page.fill("#text", f"Hello number {index}")
            page.click("#send")
            page.wait_for_function(f"window.digihuman.lastTurn?.turn === {index + 1}", timeout=60_000)
            page.wait_for_function(
                "document.getElementById('state').dataset.state === 'idle'", timeout=30_000
            )
            got = page.evaluate(
                "({arrival: window.digihuman.typedToArrivalMs, heard: window.digihuman.typedToAudioMs,"
                " first_sentence: window.digihuman.lastTurn.metrics.first_sentence_s * 1000})"
            )
            got["overhead_ms"] = got["arrival"] - got["first_sentence"]
            turns.append({k: round(v, 1) for k, v in got.items()})
        sync = page.evaluate(
            "(() => { const s = window.digihuman.player.stats; return {frames: s.framesShown,"
            " skipped: s.framesSkipped, mean_ms: s.syncMeanMs, max_ms: s.syncMaxMs}; })()"
        )
        browser.close()
    warm = turns[1:] or turns
    print(
        json.dumps(
            {
                "benchmark": "server_latency",
                "page_load_to_idle_frame_ms": [round(x) for x in loads],
                "page_load_to_idle_frame_ms_warm_median": round(statistics.median(loads[1:] or loads)),
                "typed_turns": turns,
                "typed_to_first_audio_arrival_ms_median": statistics.median(t["arrival"] for t in warm),
                "typed_to_first_audio_heard_ms_median": statistics.median(t["heard"] for t in warm),
                "server_overhead_ms_median": round(statistics.median(t["overhead_ms"] for t in warm), 1),
                "av_sync": {k: round(v, 1) if isinstance(v, float) else v for k, v in sync.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
