{{
    config(
        materialized='incremental',
        unique_key='flight_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook="{{ delete_rebuilt_months() }}"
    )
}}

with

flights as (

    select * from {{ ref('stg_flights') }}
    {% if is_incremental() %}
    where flight_month between '{{ env_var('DBT_START_MONTH', '0000-00') }}' and '{{ env_var('DBT_END_MONTH', '9999-99') }}'
    {% endif %}

),

weather as (

    select * from {{ ref('stg_weather') }}

),

planes as (

    select * from {{ ref('stg_planes') }}

),

airlines as (

    select * from {{ ref('stg_airlines') }}

),

airports as (

    select * from {{ ref('stg_airports') }}

),

-- airports.csv lacks four destinations of 2013; their IANA zones (no DST in either).
zones_missing_from_airports (faa, tzone) as (

    values
        ('BQN', 'America/Puerto_Rico'),
        ('PSE', 'America/Puerto_Rico'),
        ('SJU', 'America/Puerto_Rico'),
        ('STT', 'America/St_Thomas')

),

joined as (

    select
        flights.flight_id,
        flights.flight_month,
        flights.year,
        flights.month,
        flights.day,
        flights.carrier,
        airlines.airline_name,
        flights.flight,
        flights.tailnum,
        flights.origin,
        flights.dest,
        dest_airports.airport_name as dest_airport_name,
        coalesce(dest_airports.tzone, missing_zones.tzone) as dest_tzone,
        flights.route,
        flights.sched_dep_time,
        flights.dep_time,
        flights.sched_arr_time,
        flights.arr_time,
        flights.hour,
        flights.minute,
        flights.time_hour,
        flights.sched_dep_ts,
        flights.dep_delay,
        flights.arr_delay,
        flights.air_time,
        flights.distance,
        flights.is_delayed,

        weather.temp,
        weather.dewp,
        weather.humid,
        weather.wind_dir,
        weather.wind_speed,
        weather.wind_gust,
        weather.precip,
        weather.pressure,
        weather.visib,

        planes.manufactured_year as plane_year,
        planes.seats as plane_seats,
        planes.engines as plane_engines,
        planes.plane_type,
        2013 - planes.manufactured_year as plane_age_years

    from flights
    left join weather
        on flights.origin = weather.origin
        and flights.time_hour = weather.time_hour
    left join planes
        on flights.tailnum = planes.tailnum
    left join airlines
        on flights.carrier = airlines.carrier
    left join airports as dest_airports
        on flights.dest = dest_airports.faa
    left join zones_missing_from_airports as missing_zones
        on flights.dest = missing_zones.faa

),

arrivals as (

    select
        *,
        sched_dep_ts + coalesce(dep_delay, 0) * interval 1 minute as dep_ts,
        -- arr_time is the destination's wall clock (HHMM, 2400 = midnight ending the day).
        (arr_time // 100 * 60 + arr_time % 100) * interval 1 minute as arr_clock

    from joined

),

arrival_days as (

    select
        *,
        -- The arrival's local date is the one whose arr_time lies nearest to departure plus
        -- air time plus a typical 15 minutes of taxiing (taxi times run 5 to 235 minutes,
        -- so the neighbouring days, 24 hours away, are never nearer).
        cast(cast(timezone(
            dest_tzone, dep_ts + (air_time + 15) * interval 1 minute
        ) as date) as timestamp) as expected_local_day,
        dep_ts + (air_time + 15) * interval 1 minute as expected_arrival

    from arrivals

),

arrival_candidates as (

    select
        *,
        timezone(dest_tzone, expected_local_day - interval 1 day + arr_clock) as arrival_day_before,
        timezone(dest_tzone, expected_local_day + arr_clock) as arrival_same_day,
        timezone(dest_tzone, expected_local_day + interval 1 day + arr_clock) as arrival_day_after

    from arrival_days

),

final as (

    select
        * exclude (
            dep_ts, arr_clock, expected_local_day, expected_arrival,
            arrival_day_before, arrival_same_day, arrival_day_after
        ),
        -- When the flight's outcome became known, the event time of every feature built from
        -- past outcomes (a flight counts only where outcome_known_at < the feature timestamp):
        --   arrived: the actual arrival instant, arr_time on the destination's clock;
        --   cancelled (no dep_time): the scheduled departure, when the cancellation is known
        --     at the latest (it has no arr_delay, so it enters no delay rate and no label);
        --   diverted (departed, no arr_delay): null, it never arrives and enters nothing.
        case
            when dep_time is null then sched_dep_ts
            when arr_delay is null or arr_time is null or air_time is null then null
            when abs(epoch(arrival_day_before) - epoch(expected_arrival))
                < abs(epoch(arrival_same_day) - epoch(expected_arrival))
                then arrival_day_before
            when abs(epoch(arrival_same_day) - epoch(expected_arrival))
                <= abs(epoch(arrival_day_after) - epoch(expected_arrival))
                then arrival_same_day
            else arrival_day_after
        end as outcome_known_at

    from arrival_candidates

)

select * from final
