with

joined as (

    {{ daily_known_outcomes(ref('fct_flights'), 'carrier') }}

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
