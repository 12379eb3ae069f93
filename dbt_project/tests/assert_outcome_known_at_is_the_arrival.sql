-- Every arrived flight's outcome_known_at is its actual arrival: on the destination's clock it
-- reads arr_time, and it lies after departure + air_time and within the 24 hours after it (so
-- the day is right). A flight whose outcome were stamped earlier than it landed comes back here,
-- and with it every rolling delay rate that could have counted it before it was known.
-- One allowance: an arr_time inside the spring-forward gap (02:03 on 2013-03-10 does not exist
-- in New York) reads an hour later on the clock, so an hour's difference is accepted where the
-- zone's UTC offset changed within the two hours before.

with

flights as (

    select
        flight_id,
        arr_time,
        dest_tzone,
        air_time,
        outcome_known_at,
        sched_dep_ts + coalesce(dep_delay, 0) * interval 1 minute as departed_at,
        hour(timezone(dest_tzone, outcome_known_at)) * 60
            + minute(timezone(dest_tzone, outcome_known_at))
            - (arr_time % 2400 // 100 * 60 + arr_time % 100) as clock_minutes_off,
        epoch(timezone(dest_tzone, outcome_known_at)) - epoch(outcome_known_at)
            != epoch(timezone(dest_tzone, outcome_known_at - interval 2 hours))
                - epoch(outcome_known_at - interval 2 hours) as offset_changed

    from {{ ref('fct_flights') }}
    where arr_delay is not null

)

select * from flights
where outcome_known_at is null
    or dest_tzone is null
    or (clock_minutes_off != 0 and not (offset_changed and clock_minutes_off = 60))
    or outcome_known_at < departed_at + air_time * interval 1 minute
    or outcome_known_at > departed_at + interval 24 hours
