-- Reported in Dagster as a check on feat_route_daily, though it also reads fct_flights.
{{ config(meta={'dagster': {'ref': {'name': 'feat_route_daily'}}}) }}

-- The same brute-force recomputation as for carriers, for feat_route_daily.

with

features as (

    select * from {{ ref('feat_route_daily') }}
    where {{ rebuilt_rows('event_timestamp') }}

),

flights as (

    select route, outcome_known_at, arr_delay
    from {{ ref('fct_flights') }}
    where arr_delay is not null

),

recomputed as (

    select
        features.route,
        features.event_timestamp,
        count(flights.route) as flights_28d,
        avg(cast(flights.arr_delay > 15 as double)) as delay_rate_28d,
        avg(flights.arr_delay) as mean_arr_delay_28d

    from features
    left join flights
        on features.route = flights.route
        and flights.outcome_known_at >= features.event_timestamp - interval 28 days
        and flights.outcome_known_at < features.event_timestamp
    group by 1, 2

)

select
    features.*,
    recomputed.flights_28d,
    recomputed.delay_rate_28d,
    recomputed.mean_arr_delay_28d

from features
inner join recomputed
    on features.route = recomputed.route
    and features.event_timestamp = recomputed.event_timestamp
where features.route_flights_28d != recomputed.flights_28d
    or round(features.route_delay_rate_28d, 9)
        is distinct from round(recomputed.delay_rate_28d, 9)
    or round(features.route_mean_arr_delay_28d, 6)
        is distinct from round(recomputed.mean_arr_delay_28d, 6)
