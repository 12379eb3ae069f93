with

joined as (

    {{ daily_known_outcomes(ref('fct_flights'), 'route') }}

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
