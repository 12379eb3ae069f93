"""The data pipeline's jobs and schedule: reference tables, and each month from landing to Feast."""
