"""`python -m platform_assets`: `run` replays 2013 (replay/driver.py), `ui` opens Dagster with MLflow
and the reports beside it, `traffic` replays a month's flights against the model server."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from platform_assets import constants
from platform_assets.months import all_months


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="materialize every asset for every month and replay 2013")
    run_parser.add_argument(
        "--months", nargs="*", default=all_months(), help="YYYY-MM keys"
    )
    run_parser.add_argument(
        "--models", nargs="+", default=[constants.REPLAY_MODEL],
        help="key prefixes of the declared models whose loop runs in the replay (default: "
        f"{constants.REPLAY_MODEL}; the others' drift sensors are stopped, as the UI's toggle stops them)",
    )
    run_parser.add_argument(
        "--drift-share-threshold", type=float, default=None,
        help="replay another policy: also retrain when this share of features drifted (default: not a trigger)",
    )
    run_parser.add_argument(
        "--auc-drop-threshold", type=float, default=None,
        help="replay another policy: retrain when the top of the month's 95%% AUC interval is this far below "
        f"the champion's held-out AUC (default {constants.AUC_DROP_THRESHOLD})",
    )
    run_parser.add_argument(
        "--min-auc-gain", type=float, default=None,
        help=f"replay another gate: AUC a retrain must gain over the champion (default {constants.PROMOTION_MIN_AUC_GAIN})",
    )
    sub.add_parser(
        "ui", help="dagster dev, with the MLflow UI and the reports served beside it (make ui)"
    )
    traffic_parser = sub.add_parser(
        "traffic", help="replay a month's flights as requests to the model server (make serve)"
    )
    traffic_parser.add_argument("--month", required=True, help="YYYY-MM")
    traffic_parser.add_argument("--url", default="http://127.0.0.1:8080")
    traffic_parser.add_argument("--days", type=int, nargs="*", help="only these days of the month")
    args = parser.parse_args(argv)
    if args.command == "run":
        from platform_assets.replay.driver import run

        run(args.months, args.models, args.drift_share_threshold, args.auc_drop_threshold, args.min_auc_gain)
    elif args.command == "ui":
        from platform_assets import ui

        return ui.main()
    elif args.command == "traffic":
        from platform_assets.serving import traffic

        return traffic.main(args.month, args.url, args.days)
    return 0
