"""The one table bench/gpu_check.sh prints last: test outcome, then each configuration against the goals of
issue 14 (720p output at or under 0.08 s per frame in bf16, at least 4x the baseline, peak GPU memory at most
8 GB and flat over the frames). Usage: python bench/gpu_summary.py OUT_DIR"""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

GOAL_SECONDS, GOAL_SPEEDUP, GOAL_PEAK_MIB, FLAT = 0.08, 4.0, 8192, 0.05


def tests_line(out: Path) -> str:
    path = out / "tests.xml"
    if not path.is_file():
        return "tests: no tests.xml (the test step did not finish)"
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return (
        f"tests: {passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
        f"{counts['skipped']} skipped"
    )


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def main() -> None:
    out = Path(sys.argv[1])
    rows, info = [], {}
    for name in ("bench.json", "bench_cudagraphs.json"):
        path = out / name
        if path.is_file():
            data = json.loads(path.read_text())
            info = info or data["info"]
            rows += [r for r in data["results"] if not (rows and r["config"] == "ours")]
    print(f"\n## GPU check: {info.get('device', '?')}, torch {info.get('torch', '?')}")
    print(tests_line(out))
    if not rows:
        print("benchmark: no results (see bench.log)")
        return
    base = next((r["steady_s"] for r in rows if r["config"] == "baseline"), None)
    print(
        "\n| config | dtype | s/frame | x baseline | first frame s | peak MiB | MiB after N frames |",
        end="",
    )
    print(" max diff vs ours | goals |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["error"]:
            print(f"| {r['config']} | {r['dtype']} | failed: {r['error']} |||||||")
            continue
        speedup = base / r["steady_s"] if base and r["config"] != "baseline" else None
        marks = {int(k): v for k, v in r["memory_after_mib"].items()}
        memory = ", ".join(f"{k}: {v:.0f}" for k, v in sorted(marks.items())) or "-"
        goals = "-"
        if r["config"] != "baseline" and not info.get("tiny"):
            met = [r["steady_s"] <= GOAL_SECONDS, speedup is not None and speedup >= GOAL_SPEEDUP]
            met.append(r["peak_mib"] <= GOAL_PEAK_MIB)
            if len(marks) >= 2:
                first, last = marks[min(marks)], marks[max(marks)]
                met.append(last <= first * (1 + FLAT))
            goals = f"{sum(met)}/{len(met)} met"
        print(
            f"| {r['config']} | {r['dtype']} | {r['steady_s']:.4f} | {fmt(speedup, '.2f')} | "
            f"{r['first_frame_s']:.2f} | {r['peak_mib']:.0f} | {memory} | {fmt(r['max_diff_vs_ours'], '.1e')} | "
            f"{goals} |"
        )
    print(
        f"\ngoals: <= {GOAL_SECONDS} s/frame, >= {GOAL_SPEEDUP:g}x baseline, peak <= {GOAL_PEAK_MIB} MiB, ",
        end="",
    )
    print(f"memory after the last mark within {FLAT:.0%} of the first")


if __name__ == "__main__":
    main()
