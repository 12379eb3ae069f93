-- Reported in Dagster as a check on feat_carrier_daily, though it also reads fct_flights.
{{ config(meta={'dagster': {'ref': {'name': 'feat_carrier_daily'}}}) }}

-- Recomputes feat_carrier_daily rows by brute force, straight from the rule: a flight
-- counts only if its outcome was known strictly before event_timestamp. A row comes back
-- wherever the table disagrees, e.g. because it used a flight still in the air. Every row of
-- the months this build rebuilt, and of the 28 days after them (macros/rebuilt_rows.sql).

with

features as (

    select * from {{ ref('feat_carrier_daily') }}
    where {{ rebuilt_rows('event_timestamp') }}

),

flights as (

    select carrier, outcome_known_at, arr_delay
    from {{ ref('fct_flights') }}
    where arr_delay is not null

),

recomputed as (

    select
        features.carrier,
        features.event_timestamp,
        count(flights.carrier) filter (
            where flights.outcome_known_at >= features.event_timestamp - interval 7 days
        ) as flights_7d,
        avg(cast(flights.arr_delay > 15 as double)) filter (
            where flights.outcome_known_at >= features.event_timestamp - interval 7 days
        ) as delay_rate_7d,
        avg(flights.arr_delay) filter (
            where flights.outcome_known_at >= features.event_timestamp - interval 7 days
        ) as mean_arr_delay_7d,
        count(flights.carrier) as flights_28d,
        avg(cast(flights.arr_delay > 15 as double)) as delay_rate_28d

    from features
    left join flights
        on features.carrier = flights.carrier
        and flights.outcome_known_at >= features.event_timestamp - interval 28 days
        and flights.outcome_known_at < features.event_timestamp
    group by 1, 2

)

select
    features.*,
    recomputed.flights_7d,
    recomputed.delay_rate_7d,
    recomputed.mean_arr_delay_7d,
    recomputed.flights_28d,
    recomputed.delay_rate_28d

from features
inner join recomputed
    on features.carrier = recomputed.carrier
    and features.event_timestamp = recomputed.event_timestamp
where features.carrier_flights_7d != recomputed.flights_7d
    or features.carrier_flights_28d != recomputed.flights_28d
    or round(features.carrier_delay_rate_7d, 9)
        is distinct from round(recomputed.delay_rate_7d, 9)
    or round(features.carrier_mean_arr_delay_7d, 6)
        is distinct from round(recomputed.mean_arr_delay_7d, 6)
    or round(features.carrier_delay_rate_28d, 9)
        is distinct from round(recomputed.delay_rate_28d, 9)
