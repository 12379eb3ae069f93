with

flights as (

    select * from {{ ref('fct_flights') }}

),

days as (

    {{ feature_days(ref('fct_flights')) }}

),

carriers as (

    select distinct carrier from flights

),

calendar as (

    select
        carriers.carrier,
        days.event_timestamp

    from carriers
    cross join days

),

-- Each known outcome lands in the UTC day it became known; a window ending at midnight
-- then covers exactly the outcomes known strictly before that midnight.
daily_outcomes as (

    select
        carrier,
        {{ utc_midnight('outcome_known_at') }} as outcome_day,
        count(*) as n_flights,
        count(*) filter (where arr_delay > 15) as n_delayed,
        sum(arr_delay) as total_arr_delay

    from flights
    where arr_delay is not null
    group by 1, 2

),

joined as (

    select
        calendar.carrier,
        calendar.event_timestamp,
        coalesce(daily_outcomes.n_flights, 0) as n_flights,
        coalesce(daily_outcomes.n_delayed, 0) as n_delayed,
        coalesce(daily_outcomes.total_arr_delay, 0) as total_arr_delay

    from calendar
    left join daily_outcomes
        on calendar.carrier = daily_outcomes.carrier
        and calendar.event_timestamp = daily_outcomes.outcome_day

),

windowed as (

    select
        carrier,
        event_timestamp,
        sum(n_flights) over last_7d as flights_7d,
        sum(n_delayed) over last_7d as delayed_7d,
        sum(total_arr_delay) over last_7d as arr_delay_7d,
        sum(n_flights) over last_28d as flights_28d,
        sum(n_delayed) over last_28d as delayed_28d

    from joined
    window
        last_7d as (
            partition by carrier
            order by event_timestamp
            range between interval 7 days preceding and interval 1 day preceding
        ),
        last_28d as (
            partition by carrier
            order by event_timestamp
            range between interval 28 days preceding and interval 1 day preceding
        )

),

final as (

    select
        carrier,
        event_timestamp,
        cast(coalesce(flights_7d, 0) as bigint) as carrier_flights_7d,
        delayed_7d / nullif(flights_7d, 0) as carrier_delay_rate_7d,
        arr_delay_7d / nullif(flights_7d, 0) as carrier_mean_arr_delay_7d,
        cast(coalesce(flights_28d, 0) as bigint) as carrier_flights_28d,
        delayed_28d / nullif(flights_28d, 0) as carrier_delay_rate_28d

    from windowed

)

select * from final
order by carrier, event_timestamp
