"""Jobs of the serving group: a day's request log (compacted), a day's online evaluation (with the
promotion it gates and the skew report), and training a challenger for live evaluation instead of
promoting it offline."""

import dagster as dg

from platform_assets import constants
from platform_assets.defs.serving.partitions import daily_partitions

request_log_job = dg.define_asset_job(
    "request_log_job",
    selection=dg.AssetSelection.assets("request_log"),
    partitions_def=daily_partitions,
    description="One day of served traffic: compact each served model's request log files and "
    "report the rows, variants, latency and the rows the server could not keep.",
)

online_evaluation_job = dg.define_asset_job(
    "online_evaluation_job",
    selection=dg.AssetSelection.assets("request_log", "online_evaluation", "online_promotion", "serving_skew"),
    partitions_def=daily_partitions,
    description="One day of served traffic: the request log, online metrics per variant with the "
    "challenger check, promotion when it passed, and the training/serving skew report.",
)

train_challenger_job = dg.define_asset_job(
    "train_challenger",
    selection=dg.AssetSelection.assets(
        *(dg.AssetKey([constants.ONLINE_MODEL, a]) for a in ("training_set", "model", "evaluation")),
        "serving_challenger",
    ),
    tags={"platform/gpu": "true"},
    description="Train a candidate and, if it passes the offline gate, stage it as the server's "
    "challenger (canary or shadow) instead of promoting it: live evidence decides.",
)
