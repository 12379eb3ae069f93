with

flights as (

    select * from {{ ref('fct_flights') }}

),

days as (

    {{ feature_days(ref('fct_flights')) }}

),

routes as (

    select distinct route from flights

),

calendar as (

    select
        routes.route,
        days.event_timestamp

    from routes
    cross join days

),

-- Each known outcome lands in the UTC day it became known; a window ending at midnight
-- then covers exactly the outcomes known strictly before that midnight.
daily_outcomes as (

    select
        route,
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
        calendar.route,
        calendar.event_timestamp,
        coalesce(daily_outcomes.n_flights, 0) as n_flights,
        coalesce(daily_outcomes.n_delayed, 0) as n_delayed,
        coalesce(daily_outcomes.total_arr_delay, 0) as total_arr_delay

    from calendar
    left join daily_outcomes
        on calendar.route = daily_outcomes.route
        and calendar.event_timestamp = daily_outcomes.outcome_day

),

windowed as (

    select
        route,
        event_timestamp,
        sum(n_flights) over last_28d as flights_28d,
        sum(n_delayed) over last_28d as delayed_28d,
        sum(total_arr_delay) over last_28d as arr_delay_28d

    from joined
    window last_28d as (
        partition by route
        order by event_timestamp
        range between interval 28 days preceding and interval 1 day preceding
    )

),

final as (

    select
        route,
        event_timestamp,
        cast(coalesce(flights_28d, 0) as bigint) as route_flights_28d,
        delayed_28d / nullif(flights_28d, 0) as route_delay_rate_28d,
        arr_delay_28d / nullif(flights_28d, 0) as route_mean_arr_delay_28d

    from windowed

)

select * from final
order by route, event_timestamp
