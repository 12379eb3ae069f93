with

weather as (

    select * from {{ ref('stg_weather') }}

),

final as (

    select
        origin,
        time_hour as event_timestamp,
        temp,
        dewp,
        humid,
        wind_dir,
        wind_speed,
        wind_gust,
        precip,
        pressure,
        visib

    from weather

)

select * from final
order by origin, event_timestamp
