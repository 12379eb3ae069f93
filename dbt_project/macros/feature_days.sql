{#
    Every day at 00:00 UTC from the first scheduled departure day in `flights` through the
    day after the last one: every entity gets a row each day, quiet days included, and the
    last day's outcomes reach a lookup made on the following day.
#}
{% macro feature_days(flights) -%}
    select
        timezone('UTC', day) as event_timestamp
    from (
        select
            min({{ utc_midnight('sched_dep_ts') }}) as first_day,
            max({{ utc_midnight('sched_dep_ts') }}) + interval 1 day as last_day
        from {{ flights }}
    ) as bounds,
    lateral unnest(generate_series(
        timezone('UTC', bounds.first_day),
        timezone('UTC', bounds.last_day),
        interval 1 day
    )) as days(day)
{%- endmacro %}
