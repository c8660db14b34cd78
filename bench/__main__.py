"""``python -m bench`` (``make bench``): run every benchmark, print a table, write JSON.

Each benchmark module exposes ``run(*, quick: bool, ...) -> list[dict]``; rows
carry their own baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

from bench.harness import BenchRow, drop_scratch_topics, print_rows, write_results

BENCHMARKS = {
    "passthrough": "bench.passthrough",
    "codec": "bench.codec_bench",
    "lanes": "bench.lanes_bench",
    "replay": "bench.replay_bench",
    "plans": "bench.plans_bench",
    "extensions": "bench.extensions_bench",
    "voice": "bench.voice_bench",
    "audit": "bench.audit_bench",
    "runtime": "bench.runtime_bench",
    "observability": "bench.observability_bench",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller inputs (about a minute in all)"
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(BENCHMARKS), help="run only these"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="directory for JSON results"
    )
    args = parser.parse_args(argv)

    from streams.cluster import resolve_bootstrap

    bootstrap = resolve_bootstrap(start_local=True)
    rows: list[BenchRow] = []
    try:
        for name in args.only or list(BENCHMARKS):
            try:
                module = importlib.import_module(BENCHMARKS[name])
            except ModuleNotFoundError as exc:
                print(f"bench: skipping {name}: {exc}", file=sys.stderr)
                continue
            kwargs: dict[str, object] = {"quick": args.quick}
            if "bootstrap" in inspect.signature(module.run).parameters:
                kwargs["bootstrap"] = bootstrap
            print(f"bench: running {name} ...", file=sys.stderr)
            rows.extend(BenchRow.from_dict(r) for r in module.run(**kwargs))
    finally:
        dropped = drop_scratch_topics(bootstrap)
        print(f"bench: deleted {len(dropped)} scratch topic(s)", file=sys.stderr)
    print_rows(rows)
    path = write_results(rows, args.out)
    print(f"bench: results written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
