"""Shared code that is not an asset: settings, paths, table specs, rules, dbt wiring."""
