"""Days of served traffic: a request log partition is the flights' scheduled local date."""

import dagster as dg

daily_partitions = dg.DailyPartitionsDefinition(start_date="2013-01-01")
