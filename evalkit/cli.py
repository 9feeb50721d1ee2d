"""The ``evalkit`` command line. Every command is reachable as ``main(argv)`` for tests.

Exit status: 0 clean; 1 some inputs failed (the rest were still evaluated); 2 usage error
(unknown detector, bad option, bad root); 3 a regression was found; 4 the root is busy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Sequence, TextIO

from evalkit.errors import EvalkitError, LayoutError, RootBusyError, UnknownDetectorError

# Heavy modules (torch, MediaPipe, pandas) are imported inside the commands that need them:
# `evalkit --help` and `evalkit detectors` start without them.

log = logging.getLogger("evalkit")


def _detector_list(text: str | None) -> list[str] | None:
    return None if not text else [t.strip() for t in text.split(",") if t.strip()]


def _parse_sets(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["confetti.threshold=0.4"]`` -> ``{"confetti": {"threshold": 0.4}}`` (values as JSON when they parse)."""
    config: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        detector, dot, option = key.partition(".")
        if not sep or not dot or not detector or not option:
            raise EvalkitError(f"--set: expected DETECTOR.OPTION=VALUE, got {pair!r}")
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        config.setdefault(detector, {})[option] = parsed
    return config


def _decode_options(args: argparse.Namespace) -> Any:
    from evalkit.video import DecodeOptions

    return DecodeOptions(max_side=args.max_side or None, max_frames=args.max_frames, target_fps=args.fps)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detectors", help="comma-separated detector names (default: all that can run here)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (batched tensor work)")
    p.add_argument("--workers", type=int, default=None, help="landmark worker processes (0: in-process)")
    p.add_argument("--landmarks", choices=["mediapipe", "litert", "torch"], default=None,
                   help="face/pose landmark backend: MediaPipe's graphs, or its model files in LiteRT or in torch "
                        "(batched over videos, CPU or CUDA); default torch with --device cuda, else mediapipe")
    p.add_argument("--max-side", type=int, default=512, help="resize longer side to at most this (0: keep)")
    p.add_argument("--max-frames", type=int, default=None, help="evaluate at most this many frames per video")
    p.add_argument("--fps", type=float, default=None, help="drop frames to approach this rate")
    p.add_argument("--set", action="append", default=[], metavar="DET.OPT=VALUE", help="detector option, repeatable")
    p.add_argument("-v", "--verbose", action="count", default=0)


_DB_HELP = "results store: a SQLite file or a postgresql:// URL (default $EVALKIT_DB, else ROOT/evalkit.db)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="score video files; JSONL is the machine contract")
    p.add_argument("videos", nargs="+")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--prompt", help="one prompt for every video")
    group.add_argument("--prompts", help='prompts.jsonl: {"id", "prompt"} per line, id = video file stem')
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    p.add_argument("--output", "-o", help="write here instead of stdout")
    _add_common(p)

    p = sub.add_parser("run", help="evaluate a checkpoint root, store results, write report.html")
    p.add_argument("root")
    p.add_argument("--db", help=_DB_HELP)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for another run's lock")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--on-regression", help="command to run when a regression is found (no shell)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: decode and score on a Ray cluster's worker pools (pip install -e '.[ray]')")
    p.add_argument("--address", help="Ray cluster to join, e.g. auto or ray://HOST:10001 (default $RAY_ADDRESS, else a local one)")
    _add_common(p)

    p = sub.add_parser("watch", help="`run` in a loop for users without a scheduler")
    p.add_argument("root")
    p.add_argument("--every", default="10m", help="interval, e.g. 30s, 10m, 1h")
    p.add_argument("--iterations", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--db", help=_DB_HELP)
    p.add_argument("--wait", type=float, default=0.0)
    p.add_argument("--on-regression")
    _add_common(p)

    p = sub.add_parser("results", help="export stored results (JSONL contract + checkpoint, prompt_id)")
    p.add_argument("root")
    p.add_argument("--format", choices=["jsonl", "csv", "table"], default="jsonl")
    p.add_argument("--checkpoint")
    p.add_argument("--detector")
    p.add_argument("--output", "-o")
    p.add_argument("--db", help=_DB_HELP)

    p = sub.add_parser("report", help="rewrite ROOT/report.html from the store")
    p.add_argument("root")
    p.add_argument("--db", help=_DB_HELP)

    sub.add_parser("detectors", help="list detectors, what they need and what their score means")
    return parser


def _open_out(path: str | None) -> TextIO:
    return open(path, "w", encoding="utf-8") if path else sys.stdout


def _write_records(records: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    import pandas as pd

    if fmt == "jsonl":
        for r in records:
            out.write(json.dumps(r) + "\n")
        return
    flat = []
    for r in records:
        row = {k: v for k, v in r.items() if k not in ("events", "stats")}
        if "events" in r:
            row["num_events"] = len(r["events"])
            row["events"] = json.dumps(r["events"])
            row["stats"] = json.dumps(r["stats"])
        flat.append(row)
    df = pd.DataFrame(flat)
    if fmt == "csv":
        df.to_csv(out, index=False)
    else:
        cols = [c for c in ("video", "checkpoint", "detector", "score", "flagged", "num_events", "error") if c in df]
        out.write((df[cols].to_string(index=False) if len(df) else "(no results)") + "\n")


def _cmd_score(args: argparse.Namespace) -> int:
    from evalkit.layout import parse_video_name, read_prompts, VideoItem
    from evalkit.runner import Runner, landmark_options, resolve_detectors

    prompts: dict[str, str] = {}
    if args.prompts:
        parsed, problems = read_prompts(args.prompts)
        if problems and not parsed:
            raise problems[0]
        for problem in problems:
            log.error("%s", problem)
        prompts = {k: v.prompt for k, v in parsed.items()}
    detectors = resolve_detectors(_detector_list(args.detectors), device=args.device, config=_parse_sets(args.set))
    items = []
    for path in args.videos:
        prompt_id, seed = parse_video_name(path)
        items.append(VideoItem(path, None, prompt_id, seed, args.prompt or prompts.get(prompt_id)))
    workers = args.workers if args.workers is not None else (0 if len(items) == 1 else None)
    failed = False
    out = _open_out(args.output)
    try:
        with Runner(detectors, decode=_decode_options(args), workers=workers,
                    landmark_options=landmark_options(args.landmarks, args.device)) as runner:
            records = []
            for outcome in runner.run(items, progress=False):
                failed |= outcome.error is not None
                record = outcome.to_record()
                if args.format == "jsonl":  # stream: a long run shows progress and loses nothing
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                else:
                    records.append(record)
            if args.format != "jsonl":
                _write_records(records, args.format, out)
    finally:
        if out is not sys.stdout:
            out.close()
    return 1 if failed else 0


def _print_run(summary: Any) -> None:
    from evalkit.report import format_summary

    print(format_summary(summary))


def _cmd_run(args: argparse.Namespace) -> int:
    from evalkit.batch import run_hook, run_root

    summary = run_root(
        args.root, detectors=_detector_list(args.detectors), device=args.device, workers=args.workers,
        landmarks=args.landmarks,
        decode=_decode_options(args), config=_parse_sets(args.set), db=args.db, wait_s=args.wait,
        write_report=not args.no_report, progress=not args.no_progress and sys.stderr.isatty(),
        engine=args.engine, address=args.address,
    )
    _print_run(summary)
    if summary.regressions and args.on_regression:
        run_hook(args.on_regression, summary)
    return summary.exit_code


def _cmd_watch(args: argparse.Namespace) -> int:
    from evalkit.batch import parse_interval, run_hook, watch

    every = parse_interval(args.every)

    def on_summary(summary: Any) -> None:
        _print_run(summary)
        if summary.regressions and args.on_regression:
            run_hook(args.on_regression, summary)

    watch(
        args.root, every, iterations=args.iterations, on_summary=on_summary,
        detectors=_detector_list(args.detectors), device=args.device, workers=args.workers,
        landmarks=args.landmarks,
        decode=_decode_options(args), config=_parse_sets(args.set), db=args.db, wait_s=args.wait,
    )
    return 0


def _cmd_results(args: argparse.Namespace) -> int:
    import pandas as pd

    from evalkit.store import load_results

    df = load_results(args.root, checkpoint=args.checkpoint, detector=args.detector, db=args.db)
    records = []
    for row in df.itertuples(index=False):
        record = {"video": row.video, "detector": row.detector,
                  "score": None if pd.isna(row.score) else float(row.score), "flagged": bool(row.flagged),
                  "events": row.events, "stats": row.stats, "checkpoint": row.checkpoint, "prompt_id": row.prompt_id}
        if row.seed is not None and not pd.isna(row.seed):
            record["seed"] = int(row.seed)
        records.append(record)
    out = _open_out(args.output)
    try:
        _write_records(records, args.format, out)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from evalkit.report import write_report
    from evalkit.store import open_store

    with open_store(args.db, root=args.root, create=False) as store:
        print(write_report(args.root, store=store))
    return 0


def _cmd_detectors(args: argparse.Namespace) -> int:
    from evalkit.registry import aliases, available_detectors, detector_facts

    also: dict[str, list[str]] = {}
    for alias, target in aliases().items():
        also.setdefault(target, []).append(alias)
    for name in available_detectors():
        facts = detector_facts(name)
        alias = f" (alias: {', '.join(also[name])})" if name in also else ""
        print(f"{name}{alias}  v{facts.version}")
        print(f"  failure mode : {facts.failure_mode}")
        print(f"  needs        : {', '.join(sorted(facts.requires))}")
        units = f"; units: {facts.units}" if facts.units else ""
        print(f"  score        : {facts.score_meaning} ({facts.direction}{units})")
        reason = facts.unavailable_reason()
        if reason:
            print(f"  unavailable  : {reason}")
        if {"face", "pose"} & set(facts.requires):
            print("  landmarks    : mediapipe on CPU, torch with --device cuda; --landmarks mediapipe|litert|torch")
    print("\nFace and pose landmarks (--landmarks): mediapipe = MediaPipe's own CPU graphs (default on CPU); "
          "litert = its model files in LiteRT; torch = its model files in torch, batched over videos "
          "(default with --device cuda). A stored face/pose result names a backend other than mediapipe "
          "in its config hash (+landmarks=...).")
    return 0


_COMMANDS = {"score": _cmd_score, "run": _cmd_run, "watch": _cmd_watch, "results": _cmd_results,
             "report": _cmd_report, "detectors": _cmd_detectors}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * getattr(args, "verbose", 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("evalkit").setLevel(level)
    try:
        return _COMMANDS[args.command](args)
    except RootBusyError as exc:
        print(f"evalkit: {exc}", file=sys.stderr)
        return 4
    except (UnknownDetectorError, LayoutError, EvalkitError, ValueError) as exc:
        print(f"evalkit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
