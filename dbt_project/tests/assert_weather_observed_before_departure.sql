-- Reported in Dagster as a check on feat_origin_weather, though it also reads the training events.
{{ config(meta={'dagster': {'ref': {'name': 'feat_origin_weather'}}}) }}

-- Every flight's weather, looked up as Feast does (the newest row at or before the scheduled
-- departure, within the view's 3-hour TTL), must have been observed before that departure. The
-- observation time is recomputed from the raw stamp (observation_hour + the observed minute),
-- not taken from event_timestamp, so a table stamped at the top of the hour fails here.

with

events as (

    select flight_id, origin, event_timestamp from {{ ref('flight_training_events') }}

),

weather as (

    select origin, event_timestamp, observation_hour from {{ ref('feat_origin_weather') }}

),

looked_up as (

    select
        events.flight_id,
        events.origin,
        events.event_timestamp as predicted_at,
        weather.event_timestamp as feature_timestamp,
        weather.observation_hour
            + {{ var('weather_observed_minute') }} * interval 1 minute as observed_at

    from events
    asof inner join weather
        on events.origin = weather.origin
        and events.event_timestamp >= weather.event_timestamp

)

select * from looked_up
where feature_timestamp > predicted_at - interval 3 hours
    and observed_at > predicted_at
