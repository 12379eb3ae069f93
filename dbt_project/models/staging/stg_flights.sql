with

source as (

    select * from {{ source('validated', 'flights') }}

),

renamed as (

    select
        printf(
            '%04d-%02d-%02d-%s-%d-%s-%04d',
            year, month, day, carrier, flight, origin, sched_dep_time
        ) as flight_id,

        year,
        month,
        day,
        printf('%04d-%02d', year, month) as flight_month,

        carrier,
        flight,
        tailnum,
        origin,
        dest,
        origin || '-' || dest as route,

        sched_dep_time,
        dep_time,
        sched_arr_time,
        arr_time,
        hour,
        minute,
        time_hour,
        -- time_hour is the scheduled hour in UTC, so adding the minute keeps the
        -- local-to-UTC conversion (and its DST offsets) already done upstream.
        time_hour + to_minutes(minute) as sched_dep_ts,

        dep_delay,
        arr_delay,
        air_time,
        distance,
        arr_delay > 15 as is_delayed

    from source

)

select * from renamed
