{#
    Pre-hook for an incremental run of a month-partitioned model: empties the months being
    rebuilt, so that rows dropped upstream since the last run (e.g. newly quarantined) leave
    the table too. delete+insert on the unique key alone only replaces rows that still exist.
#}
{% macro delete_rebuilt_months() -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where flight_month between '{{ var("start_month") }}' and '{{ var("end_month") }}'
    {%- endif -%}
{%- endmacro %}
