{#
    One row per `entity` value and day (00:00 UTC, complete calendar) with the flights whose
    outcome became known during the previous UTC days bucketed by the day they became known:
    n_flights, n_delayed (arr_delay > 15) and total_arr_delay. A window ending at a day's
    midnight then covers exactly the outcomes known strictly before that midnight.
#}
{% macro daily_known_outcomes(flights, entity) -%}
    with

    days as (

        {{ feature_days(flights) }}

    ),

    entities as (

        select distinct {{ entity }} from {{ flights }}

    ),

    calendar as (

        select
            entities.{{ entity }},
            days.event_timestamp

        from entities
        cross join days

    ),

    daily_outcomes as (

        select
            {{ entity }},
            {{ utc_midnight('outcome_known_at') }} as outcome_day,
            count(*) as n_flights,
            count(*) filter (where arr_delay > 15) as n_delayed,
            sum(arr_delay) as total_arr_delay

        from {{ flights }}
        where arr_delay is not null
        group by 1, 2

    )

    select
        calendar.{{ entity }},
        calendar.event_timestamp,
        coalesce(daily_outcomes.n_flights, 0) as n_flights,
        coalesce(daily_outcomes.n_delayed, 0) as n_delayed,
        coalesce(daily_outcomes.total_arr_delay, 0) as total_arr_delay

    from calendar
    left join daily_outcomes
        on calendar.{{ entity }} = daily_outcomes.{{ entity }}
        and calendar.event_timestamp = daily_outcomes.outcome_day
{%- endmacro %}
