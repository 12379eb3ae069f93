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
    where flight_month between '{{ var("start_month") }}' and '{{ var("end_month") }}'
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
        dest_airports.tzone as dest_tzone,
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

),

final as (

    select
        *,
        -- When the arrival delay can first be known: the departure as it really happened,
        -- the flight, and an hour for taxiing out and in. Features built from past flights
        -- may only use flights whose outcome_known_at lies before the feature timestamp.
        -- Null for cancelled and diverted flights, whose air_time is null.
        sched_dep_ts
            + (coalesce(dep_delay, 0) + air_time + 60) * interval 1 minute
            as outcome_known_at

    from joined

)

select * from final
