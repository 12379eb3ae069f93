with

planes as (

    select * from {{ ref('stg_planes') }}

),

final as (

    select
        tailnum,
        -- Plane facts do not change within the data, so one row valid from the start of
        -- 2013 serves every lookup.
        timestamptz '2013-01-01 00:00:00+00' as event_timestamp,
        2013 - manufactured_year as plane_age_years,
        seats as plane_seats,
        engines as plane_engines

    from planes

)

select * from final
order by tailnum
