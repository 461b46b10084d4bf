"""Run the session benchmarks (issue #6): load server and drivers in their own processes.

    .venv/bin/python benchmarks/run.py                 # the short default run (~5 min)
    .venv/bin/python benchmarks/run.py --full          # the issue's sizes (~17 min)
    .venv/bin/python benchmarks/run.py --workloads w1 --reps 5 --drivers kernl-sansio,openai-agents

Each run starts a fresh load server (``benchmarks/load_server.py``) and one driver process
(``benchmarks/drivers/``), prints one JSON line (the driver's and the server's measurements
joined), and at the end a summary table with min / median over the repetitions, and the
issue's targets as ratios measured in this run. Repetitions are interleaved (rep 1 of every
driver, then rep 2, ...) so that a noisy neighbour hurts every driver alike. Every process is
bounded in time; the server only listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DRIVERS: dict[str, tuple[str, list[str]]] = {
    "bare-trio-websocket": ("benchmarks.drivers.bare_trio_websocket", []),
    "bare-websockets": ("benchmarks.drivers.bare_websockets", []),
    "bare-sansio": ("benchmarks.drivers.bare_sansio", []),
    "kernl-trio-websocket": ("benchmarks.drivers.kernl", ["--transport", "trio-websocket"]),
    "kernl-sansio": ("benchmarks.drivers.kernl", ["--transport", "sansio"]),
    # the default transport, reading session.event_batches() instead of session.events()
    "kernl-sansio-batched": ("benchmarks.drivers.kernl", ["--transport", "sansio", "--batched"]),
    "openai-agents": ("benchmarks.drivers.openai_agents", []),
}
BARE = ("bare-trio-websocket", "bare-websockets")  # the floor
KERNL = ("kernl-trio-websocket", "kernl-sansio", "kernl-sansio-batched")
W1_ONLY = ("bare-sansio", "kernl-sansio-batched")  # run elsewhere only when named
PEER = "openai-agents"
TOOLS = (*KERNL, PEER)  # W4 needs tools: the bare clients have none
# Repetitions per workload: W2's percentiles are over its turns, W3's over every delta.
QUICK_REPS = {"w1": 3, "w2": 1, "w3": 1, "w4": 1, "mem": 1}
FULL_REPS = {"w1": 5, "w2": 1, "w3": 1, "w4": 3, "mem": 1}


# -- running one measurement -----------------------------------------------------------------


def _peer_python(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    if importlib.util.find_spec("agents") is not None:
        return sys.executable
    candidate = ROOT / ".venv-peer" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def run_one(
    python: str, driver: str, server_args: list[str], driver_args: list[str], limit: float
) -> dict[str, Any]:
    """Start a server, run one driver against it, return both sides' measurements."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.load_server",
            "--max-seconds",
            str(limit + 30),
            *server_args,
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        port = json.loads(server.stdout.readline())["port"]
        module, extra = DRIVERS[driver]
        command = [python, "-m", module, "--url", f"ws://127.0.0.1:{port}/v1/realtime"]
        command += extra + driver_args + ["--timeout", str(limit)]
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=limit + 15
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            client = json.loads(lines[-1]) if lines else None
            if client is None:
                tail = done.stderr.strip().splitlines()[-3:]
                client = {"error": f"exit {done.returncode}: " + " | ".join(tail)}
        except subprocess.TimeoutExpired:
            client = {"error": f"timed out after {limit + 15:.0f} s"}
        wall = time.monotonic() - started
        server.stdin.close()
        report = json.loads(server.stdout.readline() or "{}")
    finally:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"client": client, "server": report, "wall_s": round(wall, 2)}


# -- turning both sides' logs into figures ----------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _conn(report: dict[str, Any]) -> dict[str, Any]:
    connections = report.get("connections") or [{}]
    return dict(connections[0])


def metrics_w1(client: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    return {
        "deltas_per_s": client.get("deltas_per_s"),
        "cpu_us_per_delta": client.get("cpu_us_per_delta"),
        "lag_p50_ms": (client.get("lag_sampled") or {}).get("p50_ms"),
        "server_cpu_s": report.get("server", {}).get("cpu_s"),
    }


def metrics_w2(client: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    conn = _conn(report)
    starts = {m[2]: m[0] for m in conn.get("marks", []) if m[1] == "speech_started"}
    interrupts = {int(k): v for k, v in (client.get("interrupt_ns") or {}).items()}
    speech = {int(k): v for k, v in (client.get("speech_ns") or {}).items()}
    to_speech = [(speech[t] - t_ss) / 1e6 for t, t_ss in starts.items() if t in speech]
    first: dict[tuple[str, int], list[Any]] = {}
    creates = 0
    for event in conn.get("events", []):
        t, kind, turn, detail = event
        if kind == "response.create" and turn >= 0:
            creates += 1
        first.setdefault((kind, turn), [t, detail])
    to_app, to_truncate, to_cancel, end_ms = [], [], [], []
    missing_interrupt = missing_truncate = cancels = 0
    for turn, t_ss in starts.items():
        if turn in interrupts:
            to_app.append((interrupts[turn] - t_ss) / 1e6)
        else:
            missing_interrupt += 1
        truncate = first.get(("conversation.item.truncate", turn))
        if truncate is None:
            missing_truncate += 1
        else:
            to_truncate.append((truncate[0] - t_ss) / 1e6)
            end_ms.append(truncate[1]["audio_end_ms"])
        cancel = first.get(("response.cancel", turn))
        if cancel is not None:
            cancels += 1
            to_cancel.append((cancel[0] - t_ss) / 1e6)
    audio_after = sum((client.get("audio_after") or {}).values())
    return {
        "turns": len(starts),
        "interrupt_p50_ms": _round(pct(to_app, 0.5)),
        "interrupt_p99_ms": _round(pct(to_app, 0.99)),
        "speech_event_p99_ms": _round(pct(to_speech, 0.99)),
        "truncate_p50_ms": _round(pct(to_truncate, 0.5)),
        "truncate_p99_ms": _round(pct(to_truncate, 0.99)),
        "cancel_p50_ms": _round(pct(to_cancel, 0.5)),
        "cancel_p99_ms": _round(pct(to_cancel, 0.99)),
        "cancels_sent": cancels,
        "audio_end_ms_median": statistics.median(end_ms) if end_ms else None,
        "audio_after_interrupt": audio_after,
        "missing_interrupt_events": missing_interrupt,
        "missing_truncates": missing_truncate,
        "extra_response_creates": creates,
    }


def metrics_w3(client: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    lag = client.get("lag") or {}
    appends = sum(c.get("appends", 0) for c in report.get("connections", []))
    return {
        "sessions": client.get("sessions"),
        "connected": client.get("connected"),
        "errors": client.get("errors") or None,
        "cpu_cores": client.get("cpu_cores"),
        "cpu_us_per_event": client.get("cpu_us_per_event"),
        # What K sessions need at 50 deltas + 50 appends per second each, from the CPU each
        # event cost: unlike cpu_cores, not capped by what a busy machine lets the driver have.
        "cores_needed": round(client["cpu_us_per_event"] * 100 * client["sessions"] / 1e6, 3)
        if client.get("cpu_us_per_event") and client.get("sessions")
        else None,
        "lag_p50_ms": lag.get("p50_ms"),
        "lag_p99_ms": lag.get("p99_ms"),
        "lag_max_ms": lag.get("max_ms"),
        "deltas": client.get("deltas"),
        "appends_at_server": appends,
        "server_cpu_s": report.get("server", {}).get("cpu_s"),
        "server_slip_p99_ms": report.get("server", {}).get("slip_p99_ms"),
    }


def metrics_w4(client: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    conn = _conn(report)
    marks = {m[1]: m[0] for m in conn.get("marks", [])}
    t_ss = marks.get("speech_started")
    times = client.get("times") or {}
    outputs = [e for e in conn.get("events", []) if e[1] == "conversation.item.create"]
    outputs = [e for e in outputs if (e[3] or {}).get("type") == "function_call_output"]
    creates = [e for e in conn.get("events", []) if e[1] == "response.create" and e[2] >= 0]
    cancel = times.get("tool_cancelled")
    app = {e[1]: e[0] for e in client.get("events") or []}
    output = outputs[0] if outputs else None
    text = (output[3] or {}).get("output") if output else None
    return {
        "tool_cancelled_after_ms": _ms(cancel - t_ss) if cancel and t_ss else None,
        "tool_finished": "tool_finished" in times,
        "tool_cancelled_after_speech_event_ms": _ms(cancel - app["speech.started"])
        if cancel and "speech.started" in app
        else None,
        "speech_event_after_ms": _ms(app["speech.started"] - t_ss)
        if "speech.started" in app and t_ss
        else None,
        "output_sent_after_ms": _ms(output[0] - t_ss) if output and t_ss else None,
        "output_says_cancelled": None if text is None else "cancel" in text.lower(),
        "output": text,
        "response_creates_after_call": len(creates),
        "response_create_after_ms": [_ms(e[0] - t_ss) for e in creates] if t_ss else None,
    }


def metrics_mem(client: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    return {
        "sessions": client.get("sessions"),
        "rss_per_session_bytes": client.get("rss_per_session_bytes"),
        "tracemalloc_per_session_bytes": client.get("tracemalloc_per_session_bytes"),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


METRICS: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "w1": metrics_w1,
    "w2": metrics_w2,
    "w3": metrics_w3,
    "w4": metrics_w4,
    "mem": metrics_mem,
}


# -- the plan --------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[tuple[str, str, list[str], list[str], float]]:
    """(workload, variant, server args, driver args, time limit) for every kind of run."""
    runs: list[tuple[str, str, list[str], list[str], float]] = []
    for workload in args.workloads:
        if workload == "w1":
            runs.append(
                (
                    "w1",
                    "",
                    ["--workload", "w1", "--deltas", str(args.deltas)],
                    ["--workload", "w1", "--deltas", str(args.deltas)],
                    120,
                )
            )
        elif workload == "w2":
            for mode in ("server", "client"):
                limit = args.turns * 4 + 30
                runs.append(
                    (
                        "w2",
                        f"{mode} cancels",
                        ["--workload", "w2", "--mode", mode, "--turns", str(args.turns)],
                        ["--workload", "w2", "--turns", str(args.turns)],
                        limit,
                    )
                )
        elif workload == "w3":
            for k in args.k:
                limit = args.duration + 60 + k / 5
                runs.append(
                    (
                        "w3",
                        f"K={k}",
                        ["--workload", "w3", "--duration", str(args.duration)],
                        [
                            "--workload",
                            "w3",
                            "--sessions",
                            str(k),
                            "--duration",
                            str(args.duration),
                        ],
                        limit,
                    )
                )
        elif workload == "w4":
            runs.append(
                (
                    "w4",
                    "",
                    ["--workload", "w4"],
                    ["--workload", "w4", "--tool-seconds", "5", "--observe-seconds", "6"],
                    60,
                )
            )
        elif workload == "mem":
            n = args.mem_sessions
            runs.append(
                (
                    "mem",
                    f"{n} sessions",
                    ["--workload", "idle"],
                    ["--workload", "mem", "--sessions", str(n)],
                    120 + n / 5,
                )
            )
    return runs


def drivers_for(workload: str, chosen: Iterable[str], named: bool) -> list[str]:
    """W4 needs tools; the W1_ONLY drivers run in W1 only unless named."""
    return [
        d
        for d in chosen
        if (workload != "w4" or d in TOOLS) and (d not in W1_ONLY or workload == "w1" or named)
    ]


# -- summary -----------------------------------------------------------------------------------

SUMMARY_FIELDS: dict[str, list[str]] = {
    "w1": ["deltas_per_s", "cpu_us_per_delta"],
    "w2": [
        "speech_event_p99_ms",
        "interrupt_p99_ms",
        "truncate_p99_ms",
        "cancel_p99_ms",
        "audio_after_interrupt",
        "cancels_sent",
        "audio_end_ms_median",
        "extra_response_creates",
    ],
    "w3": ["cpu_cores", "cpu_us_per_event", "cores_needed", "lag_p99_ms", "server_slip_p99_ms"],
    "w4": [
        "speech_event_after_ms",
        "tool_cancelled_after_ms",
        "output_sent_after_ms",
        "output_says_cancelled",
        "response_creates_after_call",
    ],
    "mem": ["rss_per_session_bytes", "tracemalloc_per_session_bytes"],
}


def _fmt(values: list[Any]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if all(isinstance(v, bool) for v in values):
        return "/".join(sorted({str(v).lower() for v in values}))
    if len(values) == 1:
        return _num(values[0])
    return f"{_num(min(values))} / {_num(statistics.median(values))}"


def _num(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def summarise(results: list[dict[str, Any]]) -> tuple[str, dict[tuple[str, str, str], dict]]:
    groups: dict[tuple[str, str, str], dict[str, list[Any]]] = {}
    for r in results:
        if "metrics" not in r:
            continue
        key = (r["workload"], r["variant"], r["driver"])
        bucket = groups.setdefault(key, {})
        for name, value in r["metrics"].items():
            bucket.setdefault(name, []).append(value)
    lines = []
    for workload, fields in SUMMARY_FIELDS.items():
        keys = [k for k in groups if k[0] == workload]
        if not keys:
            continue
        lines.append("")
        lines.append(f"{workload} (min / median over repetitions)")
        lines.append("| variant | driver | reps | " + " | ".join(fields) + " |")
        lines.append("|---" * (len(fields) + 3) + "|")
        for key in keys:
            bucket = groups[key]
            reps = len(next(iter(bucket.values()), []))
            cells = [_fmt(bucket.get(f, [])) for f in fields]
            lines.append(f"| {key[1] or '-'} | {key[2]} | {reps} | " + " | ".join(cells) + " |")
    return "\n".join(lines), groups


def _median(groups: dict[Any, Any], key: tuple[str, str, str], field: str) -> Any:
    values = [v for v in groups.get(key, {}).get(field, []) if v is not None]
    return statistics.median(values) if values else None


def targets(groups: dict, args: argparse.Namespace) -> str:
    """The issue's targets, as ratios of medians measured in this run."""
    out = ["", "targets (medians of this run)"]

    def line(name: str, ok: bool | None, detail: str) -> None:
        mark = "n/a" if ok is None else ("MET" if ok else "NOT MET")
        out.append(f"- {name}: {mark} ({detail})")

    peer_dps = _median(groups, ("w1", "", PEER), "deltas_per_s")
    bare_cpu = [c for d in BARE if (c := _median(groups, ("w1", "", d), "cpu_us_per_delta"))]
    floor = min(bare_cpu) if bare_cpu else None
    for kernl in KERNL:
        dps = _median(groups, ("w1", "", kernl), "deltas_per_s")
        cpu = _median(groups, ("w1", "", kernl), "cpu_us_per_delta")
        if dps and peer_dps:
            line(
                f"W1 {kernl} >= 1.5x peer deltas/s",
                dps >= 1.5 * peer_dps,
                f"{dps:,.0f} vs {peer_dps:,.0f} = {dps / peer_dps:.2f}x",
            )
        if cpu and floor:
            line(
                f"W1 {kernl} CPU/delta <= 1.25x fastest bare",
                cpu <= 1.25 * floor,
                f"{cpu:.1f} vs {floor:.1f} us = {cpu / floor:.2f}x",
            )
    for kernl in KERNL:
        for mode in ("server cancels", "client cancels"):
            p99 = _median(groups, ("w2", mode, kernl), "interrupt_p99_ms")
            after = _median(groups, ("w2", mode, kernl), "audio_after_interrupt")
            if p99 is not None:
                line(
                    f"W2 {kernl} ({mode}) interruption p99 < 1 ms, no audio after",
                    p99 < 1 and after == 0,
                    f"p99 {p99:.3f} ms, {after:g} deltas after",
                )
    peer_cpu = _median(groups, ("w3", "K=100", PEER), "cores_needed")
    for kernl in KERNL:
        cpu = _median(groups, ("w3", "K=100", kernl), "cores_needed")
        if cpu is not None and peer_cpu is not None:
            line(
                f"W3 {kernl} CPU at K=100 <= peer (cores needed)",
                cpu <= peer_cpu,
                f"{cpu:.3f} vs {peer_cpu:.3f} cores",
            )
        under = [
            k
            for k in args.k
            if (p := _median(groups, ("w3", f"K={k}", kernl), "lag_p99_ms")) is not None and p < 50
        ]
        tested = [k for k in args.k if ("w3", f"K={k}", kernl) in groups]
        if tested:
            largest = max(under) if under else 0
            line(
                f"W3 {kernl} largest K with p99 lag < 50 ms >= 200",
                largest >= 200,
                f"largest {largest} of {tested}",
            )
    for kernl in KERNL:
        cancel = _median(groups, ("w4", "", kernl), "tool_cancelled_after_ms")
        creates = _median(groups, ("w4", "", kernl), "response_creates_after_call")
        if ("w4", "", kernl) in groups:
            ok = cancel is not None and cancel < 1 and creates == 0
            when = "never" if cancel is None else f"{cancel:.3f} ms after speech_started"
            line(
                f"W4 {kernl} tool cancelled < 1 ms, no response.create",
                ok,
                f"cancelled {when}, {creates:g} response.create",
            )
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (long)")
    parser.add_argument("--workloads", default="w1,w2,w3,w4,mem")
    parser.add_argument("--drivers", default=",".join(DRIVERS))
    parser.add_argument(
        "--reps", type=int, default=None, help="repetitions of every run (default: REPS)"
    )
    parser.add_argument("--deltas", type=int, default=20_000, help="W1 deltas")
    parser.add_argument("--turns", type=int, default=None, help="W2 turns (quick 5, full 30)")
    parser.add_argument("--k", default=None, help="W3 sessions (quick 50,100,200; full +500)")
    parser.add_argument("--duration", type=float, default=None, help="W3 s (quick 3, full 10)")
    parser.add_argument("--mem-sessions", type=int, default=None, help="quick 100, full 500")
    parser.add_argument("--peer-python", default=None, help="interpreter with openai-agents")
    parser.add_argument("--json-out", default=None, help="also write the JSON lines here")
    args = parser.parse_args(argv)
    full = args.full
    args.workloads = args.workloads.split(",")
    args.turns = args.turns or (30 if full else 5)
    args.k = [int(k) for k in (args.k or ("50,100,200,500" if full else "50,100,200")).split(",")]
    args.duration = args.duration or (10.0 if full else 3.0)
    args.mem_sessions = args.mem_sessions or (500 if full else 100)
    reps_of = dict(FULL_REPS if full else QUICK_REPS)
    if args.reps:
        reps_of = dict.fromkeys(reps_of, args.reps)
    chosen = [d for d in args.drivers.split(",") if d]
    unknown = [d for d in chosen if d not in DRIVERS]
    if unknown:
        parser.error(f"unknown drivers {unknown}; known: {list(DRIVERS)}")
    peer_python = _peer_python(args.peer_python)
    out = open(args.json_out, "w") if args.json_out else None  # noqa: SIM115
    results: list[dict[str, Any]] = []

    def record(line: dict[str, Any]) -> None:
        text = json.dumps(line)
        print(text, flush=True)
        if out is not None:
            out.write(text + "\n")
            out.flush()

    if PEER in chosen and peer_python is None:
        record({"driver": PEER, "skipped": "openai-agents not found (see --peer-python)"})
        chosen.remove(PEER)
    meta = {
        "meta": {
            "python": sys.version.split()[0],
            "peer_python": peer_python,
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "args": {k: v for k, v in vars(args).items() if k != "json_out"},
            "reps": reps_of,
        }
    }
    record(meta)
    started = time.monotonic()
    for workload, variant, server_args, driver_args, limit in plan(args):
        for rep in range(reps_of[workload]):
            for driver in drivers_for(workload, chosen, args.drivers != ",".join(DRIVERS)):
                python = peer_python if driver == PEER else sys.executable
                assert python is not None
                raw = run_one(python, driver, server_args, driver_args, limit)
                client = raw["client"]
                line: dict[str, Any] = {
                    "workload": workload,
                    "variant": variant,
                    "driver": driver,
                    "rep": rep,
                    "wall_s": raw["wall_s"],
                }
                if "error" in client or "skipped" in client:
                    line.update({k: client[k] for k in ("error", "skipped") if k in client})
                else:
                    line["metrics"] = METRICS[workload](client, raw["server"])
                    line["client"] = {k: v for k, v in client.items() if k not in ("interrupt_ns",)}
                results.append(line)
                record(line)
    table, groups = summarise(results)
    print(table)
    print(targets(groups, args))
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if out is not None:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
