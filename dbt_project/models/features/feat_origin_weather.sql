with

weather as (

    select * from {{ ref('stg_weather') }}

),

final as (

    select
        origin,
        -- A row stamped hour h is the routine observation made at h:51 (METAR): it is known
        -- from then, not from h:00, so a departure at 14:30 sees the 13:51 observation.
        time_hour + {{ var('weather_observed_minute') }} * interval 1 minute as event_timestamp,
        time_hour as observation_hour,
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
